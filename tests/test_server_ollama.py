"""The real `ollama` client against a real server: chat, generate, think, list, ps, show,
version, JSON format, and keep_alive."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import httpx
import ollama
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server

MODEL = "tiny-r1-qwen"
OPTIONS = {"temperature": 0, "num_predict": 10}


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    settings = replace(TEST_SETTINGS, models=(str(tiny_model),))
    with isolated_store(tmp_path_factory.mktemp("store")), running_server(settings) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    return ollama.Client(host=url)


def say(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_chat_with_thinking_keeps_it_apart(client):
    reply = client.chat(model=MODEL, messages=say("Why?"), think=True, options=OPTIONS)
    assert reply.done and reply.done_reason == "length"
    assert reply.message.thinking and reply.message.content == ""
    assert reply.eval_count == 10 and reply.prompt_eval_count > 0 and reply.total_duration > 0


def test_chat_without_thinking(client):
    reply = client.chat(model=MODEL, messages=say("Why?"), think=False, options=OPTIONS)
    assert reply.message.content and not reply.message.thinking


def test_streamed_chat_equals_the_whole_reply(client):
    whole = client.chat(model=MODEL, messages=say("Why?"), think=True, options=OPTIONS)
    parts = list(client.chat(model=MODEL, messages=say("Why?"), think=True, options=OPTIONS, stream=True))
    assert all(not p.done for p in parts[:-1]) and parts[-1].done and parts[-1].eval_count == 10
    assert "".join(p.message.thinking or "" for p in parts) == whole.message.thinking


def test_generate_streamed_and_not(client):
    whole = client.generate(model=MODEL, prompt="Once", think=False, options=OPTIONS)
    assert whole.response and whole.done_reason == "length"
    parts = list(client.generate(model=MODEL, prompt="Once", think=False, options=OPTIONS, stream=True))
    assert "".join(p.response for p in parts) == whole.response
    raw = client.generate(model=MODEL, prompt="Once", raw=True, options=OPTIONS)
    assert raw.response and not raw.thinking


def test_logprobs_as_the_ollama_client_reads_them(client):
    whole = client.chat(model=MODEL, messages=say("Why?"), think=True, options=OPTIONS, logprobs=True, top_logprobs=3)
    assert len(whole.logprobs) == whole.eval_count == 10  # every generated token, the thinking's included
    for token in whole.logprobs:  # greedy: the token taken is the likeliest of the alternatives
        assert token.logprob <= 0 and len(token.top_logprobs) == 3
        assert token.top_logprobs[0].token == token.token and token.top_logprobs[0].logprob == pytest.approx(
            token.logprob
        )
    assert "".join(t.token for t in whole.logprobs).strip() == whole.message.thinking.strip()
    parts = list(
        client.chat(
            model=MODEL, messages=say("Why?"), think=True, options=OPTIONS, logprobs=True, top_logprobs=3, stream=True
        )
    )
    streamed = [t for p in parts for t in (p.logprobs or [])]
    assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in whole.logprobs]
    generated = client.generate(model=MODEL, prompt="Once", think=False, options=OPTIONS, logprobs=True)
    assert len(generated.logprobs) == 10 and all(not t.top_logprobs for t in generated.logprobs)
    assert "".join(t.token for t in generated.logprobs).strip() == generated.response.strip()
    assert client.chat(model=MODEL, messages=say("Why?"), options=OPTIONS).logprobs is None  # only when asked
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model=MODEL, messages=say("Why?"), logprobs=True, top_logprobs=21)
    assert caught.value.status_code == 400 and "top_logprobs" in caught.value.error


def test_format_json_schema(client):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    reply = client.chat(model=MODEL, messages=say("ok?"), format=schema, options={"temperature": 0, "num_predict": 30})
    assert isinstance(json.loads(reply.message.content)["ok"], bool)


def test_list_ps_show_version(client, url, tiny_model):
    assert [m.model for m in client.list().models] == [MODEL]
    listed = client.list().models[0]
    assert listed.size == tiny_model.stat().st_size and listed.details.format == "gguf"
    running = client.ps().models
    assert [m.model for m in running] == [MODEL] and running[0].context_length == 512
    shown = client.show(MODEL)
    assert "thinking" in shown.capabilities and "<｜Assistant｜>" in shown.template
    assert shown.modelinfo["general.architecture"] == "qwen2"
    assert httpx.get(f"{url}/api/version").json()["version"]
    assert httpx.get(url).text == "r1local is running"


def test_keep_alive_zero_unloads_and_a_request_loads_again(client):
    assert client.generate(model=MODEL, keep_alive=0).done_reason == "unload"
    deadline = time.monotonic() + 5
    while client.ps().models:
        assert time.monotonic() < deadline, "keep_alive 0 did not unload"
        time.sleep(0.05)
    assert client.generate(model=MODEL).done_reason == "load"
    assert [m.model for m in client.ps().models] == [MODEL]


def test_keep_alive_duration_unloads_when_idle(client):
    client.chat(model=MODEL, messages=say("hi"), options=OPTIONS, keep_alive="1s")
    expires = client.ps().models[0].expires_at.timestamp()
    assert 0 < expires - time.time() <= 1.5
    deadline = time.monotonic() + 5
    while client.ps().models:
        assert time.monotonic() < deadline, "the idle model was not unloaded"
        time.sleep(0.05)
    client.chat(model=MODEL, messages=say("hi"), options=OPTIONS, keep_alive=-1)
    assert client.ps().models[0].expires_at.year > 2300


def test_bad_keep_alive_is_a_400(url):
    response = httpx.post(f"{url}/api/chat", json={"model": MODEL, "messages": say("x"), "keep_alive": "soon"})
    assert response.status_code == 400 and "keep_alive" in response.json()["error"]


def test_body_without_a_json_content_type_is_read_as_json(url):
    # `curl URL -d '{...}'`, as Ollama's own examples do, declares a form body
    body = json.dumps({"model": MODEL, "prompt": "hi", "stream": False, "options": OPTIONS})
    response = httpx.post(
        f"{url}/api/generate", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200 and response.json()["done"] is True
