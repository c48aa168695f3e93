"""What real clients send and expect beyond the basics: unknown and vendor fields ignored (refused
only under --strict), models with Unix `created` and retrieve, HEAD /, Ollama durations that add
up, prefill, `think` on a model that cannot think, and a model without a chat template."""

from __future__ import annotations

import time

import httpx
import ollama
import openai
import pytest
from serving import openai_client, serving

MODEL = "tiny-r1-qwen"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "temperature": 0}


@pytest.fixture(scope="module")
def url(tiny_model, plain_model, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model, plain_model, max_loaded=2) as base:
        yield base


@pytest.fixture(scope="module")
def strict_url(tiny_model, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model, strict=True) as base:
        yield base


EXTRAS = {
    "chat_template_kwargs": {"enable_thinking": False},
    "cache_prompt": True,
    "prompt_cache_key": "k",
    "n_predict": 3,
    "frobnicate": {"x": 1},
    "continue_final_message": True,
    "reasoning_format": "deepseek",
}


def test_unknown_and_vendor_fields_pass_on_both_dialects(url):
    reply = httpx.post(
        f"{url}/v1/chat/completions",
        json={**CHAT, **EXTRAS, "messages": [{"role": "user", "content": "hi", "x_vendor": 1}]},
    )
    assert reply.status_code == 200, reply.text
    message = reply.json()["choices"][0]["message"]
    assert message["content"] and "reasoning_content" not in message  # enable_thinking false was honoured
    ollama_body = {
        "model": MODEL,
        "prompt": "hi",
        "stream": False,
        "truncate": True,
        "newer_field": [1],
        "options": {"num_predict": 3, "num_keep": 4, "not_an_option": 1},
    }
    reply = httpx.post(f"{url}/api/generate", json=ollama_body)
    assert reply.status_code == 200 and reply.json()["eval_count"] == 3


def test_wrong_types_still_name_the_field(url):
    reply = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "cache_prompt": "often"})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "cache_prompt"
    reply = httpx.post(f"{url}/api/chat", json={"model": MODEL, "messages": [], "options": {"num_ctx": "big"}})
    assert reply.status_code == 400 and "options.num_ctx" in reply.json()["error"]


def test_strict_refuses_unknown_fields_by_name(strict_url):
    reply = httpx.post(f"{strict_url}/v1/chat/completions", json={**CHAT, "frobnicate": 1})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "frobnicate"
    reply = httpx.post(f"{strict_url}/api/generate", json={"model": MODEL, "prompt": "x", "options": {"nope": 1}})
    assert reply.status_code == 400 and "options.nope" in reply.json()["error"]
    assert httpx.post(f"{strict_url}/v1/chat/completions", json=CHAT).status_code == 200


def test_models_have_unix_created_and_can_be_retrieved(url):
    client = openai_client(url)
    models = client.models.list().data
    assert {m.id for m in models} == {MODEL, "tiny-plain"}
    assert all(isinstance(m.created, int) and 1e9 < m.created <= time.time() for m in models)
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nobody/nothing")


def test_head_of_root_is_200(url):
    assert httpx.head(url).status_code == 200


def test_ollama_durations_add_up(url):
    for stream in (False, True):
        reply = ollama.Client(host=url).generate(
            model=MODEL, prompt="Why?", stream=stream, options={"num_predict": 8, "temperature": 0}
        )
        final = list(reply)[-1] if stream else reply
        parts = final.load_duration + final.prompt_eval_duration + final.eval_duration
        assert final.total_duration >= parts and final.prompt_eval_duration > 0 and final.eval_duration > 0


def test_think_on_a_model_that_cannot_think_is_a_400(url):
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=url).chat(model="tiny-plain", messages=[{"role": "user", "content": "hi"}], think=True)
    assert refused.value.status_code == 400 and "does not support thinking" in refused.value.error
    plain = ollama.Client(host=url).chat(
        model="tiny-plain", messages=[{"role": "user", "content": "hi"}], options={"num_predict": 3}
    )
    assert plain.message.content and not plain.message.thinking


def test_prefill_continues_the_last_assistant_message(url):
    apply = httpx.post(
        f"{url}/apply-template",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello, my name"}],
        },
    )
    assert apply.json()["prompt"].endswith("</think>\n\nHello, my name")
    reply = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            **CHAT,
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello, my name"}],
        },
    ).json()
    message = reply["choices"][0]["message"]
    assert message["content"] and "reasoning_content" not in message  # the answer continued, no new think


def test_a_gguf_without_template_gets_the_builtin_for_its_architecture(url):
    prompt = httpx.post(
        f"{url}/apply-template", json={"model": "tiny-plain", "messages": [{"role": "user", "content": "hi"}]}
    ).json()["prompt"]
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"  # qwen2: ChatML is llama.cpp's pick
    shown = ollama.Client(host=url).show("tiny-plain")
    assert shown.capabilities == ["completion", "embedding"]
    assert ollama.Client(host=url).show(MODEL).capabilities == ["completion", "thinking", "tools", "embedding"]
    assert ollama.Client(host=url).show(MODEL).modelinfo["qwen2.context_length"] == 512


def test_n_choices_come_back_whole_and_streamed(url):
    client = openai_client(url)
    ask = [{"role": "user", "content": "Name a colour."}]
    reply = client.chat.completions.create(model=MODEL, messages=ask, n=3, max_tokens=5, seed=7)
    assert [c.index for c in reply.choices] == [0, 1, 2] and reply.usage.completion_tokens == 15
    assert len({c.message.reasoning_content for c in reply.choices}) > 1  # seeds 7, 8, 9: different samples
    again = client.chat.completions.create(model=MODEL, messages=ask, n=3, max_tokens=5, seed=7)
    assert [c.message.reasoning_content for c in again.choices] == [c.message.reasoning_content for c in reply.choices]
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=ask, n=2, max_tokens=4, stream=True, stream_options={"include_usage": True}
        )
    )
    finished = [c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason]
    assert sorted(finished) == [0, 1] and chunks[-1].usage.completion_tokens == 8


def test_completions_echo_and_suffix(url):
    client = openai_client(url)
    echoed = client.completions.create(model=MODEL, prompt="def add(a, b):", echo=True, max_tokens=4, temperature=0)
    plain = client.completions.create(model=MODEL, prompt="def add(a, b):", max_tokens=4, temperature=0)
    assert echoed.choices[0].text == "def add(a, b):" + plain.choices[0].text
    streamed = client.completions.create(
        model=MODEL, prompt="def add(a, b):", echo=True, max_tokens=4, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == echoed.choices[0].text
    filled = client.completions.create(
        model=MODEL, prompt="def add(a, b):\n", suffix="\n    return c\n", max_tokens=4, temperature=0
    )
    prefix = len(httpx.post(f"{url}/tokenize", json={"content": "def add(a, b):\n"}).json()["tokens"])
    suffix = len(httpx.post(f"{url}/tokenize", json={"content": "\n    return c\n"}).json()["tokens"])
    assert filled.usage.prompt_tokens == prefix + suffix + 3  # the model's own FIM tokens around them


def test_logprobs_on_chat_and_completions(url):
    client = openai_client(url)
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=6,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    tokens = reply.choices[0].logprobs.content
    assert len(tokens) == 6
    for token in tokens:
        alternatives = [alt.logprob for alt in token.top_logprobs]
        assert len(alternatives) == 3 and alternatives == sorted(alternatives, reverse=True)
        assert token.logprob <= 0 and token.logprob == pytest.approx(alternatives[0])  # greedy took the best
    legacy = client.completions.create(model=MODEL, prompt="Once upon", max_tokens=5, temperature=0, logprobs=2)
    logprobs = legacy.choices[0].logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == 5 and max(logprobs.token_logprobs) <= 0
    assert all(len(top) <= 2 for top in logprobs.top_logprobs) and logprobs.text_offset[0] == 0
    streamed = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=6,
        temperature=0,
        logprobs=True,
        stream=True,
    )
    got = [t.logprob for c in streamed if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert got == pytest.approx([t.logprob for t in tokens])


def test_reasoning_format_none_keeps_the_reasoning_in_content(url):
    body = {**CHAT, "max_tokens": 6, "reasoning_budget_tokens": 2, "reasoning_format": "none"}
    message = httpx.post(f"{url}/v1/chat/completions", json=body).json()["choices"][0]["message"]
    assert "reasoning_content" not in message
    assert (
        message["content"].startswith("<think>\n")
        and "Time is up; I will answer now.\n</think>\n\n" in message["content"]
    )
