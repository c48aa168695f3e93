"""One chat request: the CLI (in-process and through a resident server) and every API dialect turn
the same conversation into the same ChatRequest, and prepare() into the same prompt; the R1 policy
(thinking default and budget, JSON formats, the max_tokens clamp) and the declared capabilities
are applied there, once."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest
from serving import openai_client, serving

from r1local.cli.options import chat_request
from r1local.client import ResidentServer, openai_body
from r1local.engine.model import Model
from r1local.engine.params import SamplingParams
from r1local.errors import UsageError
from r1local.request import ChatRequest, ResponseFormat, prepare
from r1local.server.ollama_schemas import OllamaChatRequest
from r1local.server.openai_schemas import ChatCompletionRequest

MODEL = "tiny-r1-qwen"
CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And 3 + 3?"},
]


@pytest.fixture(scope="module")
def engine(tiny_model):
    with Model.load(tiny_model, n_ctx=512, n_threads=1) as model:
        yield model


@pytest.fixture(scope="module")
def plain(plain_model):
    with Model.load(plain_model, n_ctx=512, n_threads=1) as model:
        yield model


def front_ends(think: bool | None) -> dict[str, ChatRequest]:
    """The same conversation as each front end builds it."""
    cli = chat_request(CONVERSATION, think, SamplingParams(temperature=0.6, top_p=0.95))
    switch = {} if think is None else {"think": think}
    return {
        "cli": cli,
        "cli through a server": ChatCompletionRequest.model_validate({"model": MODEL, **openai_body(cli)}).to_request(),
        "openai": ChatCompletionRequest.model_validate(
            {"model": MODEL, "messages": CONVERSATION, **switch}
        ).to_request(),
        "openai (llama.cpp's switch)": ChatCompletionRequest.model_validate(
            {
                "model": MODEL,
                "messages": CONVERSATION,
                **({} if think is None else {"chat_template_kwargs": {"enable_thinking": think}}),
            }
        ).to_request(),
        "ollama": OllamaChatRequest.model_validate({"model": MODEL, "messages": CONVERSATION, **switch}).chat(),
    }


@pytest.mark.parametrize("think", [None, True, False])
def test_every_front_end_renders_the_same_prompt(engine, think):
    prompts = {name: prepare(chat, engine).prompt(engine) for name, chat in front_ends(think).items()}
    assert len(set(prompts.values())) == 1, prompts
    opened = prompts["cli"].endswith("<think>\n")
    assert opened == (think is not False)  # R1 reasons unless told not to


def test_one_turn_through_generate_and_chat_is_the_same_prompt(engine):
    generate = OllamaChatRequest.model_validate({"model": MODEL, "messages": CONVERSATION[:2]}).chat()
    from r1local.server.ollama_schemas import GenerateRequest

    single = GenerateRequest.model_validate({"model": MODEL, "system": "Answer briefly.", "prompt": "What is 2 + 2?"})
    assert prepare(single.chat(), engine).prompt(engine) == prepare(generate, engine).prompt(engine)


def test_the_same_prompt_reaches_the_engine_over_http(engine, tiny_model, tmp_path_factory):
    """Through real servers and clients: llama-server's /apply-template shows the prompt, and every
    dialect's answer counts exactly its tokens."""
    expected = prepare(ChatRequest(CONVERSATION), engine).prompt(engine)
    tokens = len(engine.prompt_tokens(expected))
    with serving(tmp_path_factory, tiny_model) as url:
        shown = httpx.post(f"{url}/apply-template", json={"model": MODEL, "messages": CONVERSATION}).json()
        assert shown["prompt"] == expected
        reply = openai_client(url).chat.completions.create(model=MODEL, messages=CONVERSATION, max_tokens=1)
        assert reply.usage.prompt_tokens == tokens
        answer = ollama.Client(host=url).chat(model=MODEL, messages=CONVERSATION, options={"num_predict": 1})
        assert answer.prompt_eval_count == tokens
        server = ResidentServer(url)
        try:
            stream = server.chat(MODEL, chat_request(CONVERSATION, None, SamplingParams(max_tokens=1)))
            assert [e for e in stream][-1].usage.prompt_tokens == tokens
        finally:
            server.close()


def test_thinking_follows_the_model(engine, plain):
    assert prepare(ChatRequest(CONVERSATION), engine).think
    assert not prepare(ChatRequest(CONVERSATION), plain).think  # says nothing: answers at once
    assert not prepare(ChatRequest(CONVERSATION, think=False), plain).think
    with pytest.raises(UsageError, match='"tiny-plain" does not support thinking') as refused:
        prepare(ChatRequest(CONVERSATION, think=True), plain)
    assert refused.value.param == "think"


def test_a_think_budget_of_zero_turns_thinking_off_once_for_all(engine):
    assert not prepare(ChatRequest(CONVERSATION, think_budget=0), engine).think
    assert not prepare(ChatRequest(CONVERSATION, default_think_budget=0), engine).think  # the server's default
    assert prepare(ChatRequest(CONVERSATION, think_budget=5, default_think_budget=0), engine).params.think_budget == 5
    assert prepare(ChatRequest(CONVERSATION, effort="high", default_think_budget=9), engine).params.think_budget is None
    assert prepare(ChatRequest(CONVERSATION, effort="low"), engine).params.think_budget == 1024


def test_a_json_format_turns_thinking_off_and_max_tokens_is_clamped(engine):
    prepared = prepare(ChatRequest(CONVERSATION, response_format=ResponseFormat(None), max_tokens=10**9), engine)
    assert not prepared.think and prepared.params.grammar and prepared.params.max_tokens == engine.n_ctx


def test_a_request_beyond_the_capabilities_is_one_400_naming_it(plain):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    tools = ChatCompletionRequest.model_validate({"model": "m", "messages": CONVERSATION, "tools": [tool]})
    with pytest.raises(UsageError, match="does not support tools") as refused:
        prepare(tools.to_request(), plain)
    assert refused.value.param == "tools"


def test_the_chat_dialects_answer_a_model_without_thinking(plain_model, tmp_path_factory):
    import openai

    ask = [{"role": "user", "content": "hi"}]
    with serving(tmp_path_factory, plain_model) as url:
        client = openai_client(url)
        assert client.chat.completions.create(model="tiny-plain", messages=ask, max_tokens=3).choices[0].message
        assert ollama.Client(host=url).chat(model="tiny-plain", messages=ask, options={"num_predict": 3}).message
        with pytest.raises(openai.BadRequestError, match="does not support thinking") as refused:
            client.chat.completions.create(model="tiny-plain", messages=ask, max_tokens=3, extra_body={"think": True})
        assert refused.value.body["param"] == "think"
        with pytest.raises(ollama.ResponseError, match="does not support thinking") as refused_ollama:
            ollama.Client(host=url).chat(model="tiny-plain", messages=ask, think=True, options={"num_predict": 3})
        assert refused_ollama.value.status_code == 400
        shown = ollama.Client(host=url).show("tiny-plain")
        assert shown.capabilities == ["completion", "embedding"]
        card = client.models.retrieve("tiny-plain").model_extra["capabilities"]
        assert card["embeddings"] and not card["thinking"] and card["context_length"] == 512


def test_run_answers_with_a_model_without_thinking_in_process_and_through_a_server(plain_model, tmp_path_factory):
    import os
    import subprocess
    import sys

    def run(*args: str, host: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "R1LOCAL_HOST": host}
        return subprocess.run(
            [sys.executable, "-m", "r1local", "run", *args, "--temperature", "0", "--max-tokens", "3"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            stdin=subprocess.DEVNULL,
        )

    here = run(str(plain_model), "hi", "--ctx", "512", "--threads", "1", host="http://127.0.0.1:9")
    assert here.returncode == 20 and here.stdout.strip(), here.stderr  # an answer, cut at --max-tokens 3
    with serving(tmp_path_factory, plain_model) as url:
        served = run(plain_model.stem, "hi", host=url)
        assert served.returncode == 20 and served.stdout == here.stdout, served.stderr
        metrics = httpx.get(f"{url}/metrics").text  # the server answered it
        assert 'r1local_requests_total{api="openai",finish_reason="length",model="tiny-plain"} 1.0' in metrics


def test_llm_ollama_finds_the_embedding_models(tiny_model, bert_model, tmp_path_factory, tmp_path):
    """llm-ollama registers as embedding models those whose /api/show lists `embedding`."""
    import os
    import shutil
    import subprocess

    llm = shutil.which("llm")
    if llm is None:
        pytest.skip("the llm command is not installed (pip install llm llm-ollama)")
    with serving(tmp_path_factory, tiny_model, bert_model) as url:
        env = {**os.environ, "OLLAMA_HOST": url, "LLM_USER_PATH": str(tmp_path)}
        listed = subprocess.run([llm, "embed-models"], capture_output=True, text=True, timeout=120, env=env)
        assert listed.returncode == 0, listed.stderr
        assert "Ollama: ollama/tiny-r1-qwen" in listed.stdout and "Ollama: ollama/tiny-bert" in listed.stdout
        embedded = subprocess.run(
            [llm, "embed", "-m", "ollama/tiny-bert", "-c", "hello"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert embedded.returncode == 0 and len(json.loads(embedded.stdout)) > 8, embedded.stderr


def test_a_request_beyond_the_capabilities_is_refused_before_the_model_loads(plain_model, tmp_path_factory):
    import time

    ask = [{"role": "user", "content": "hi"}]
    with serving(tmp_path_factory, plain_model) as url:
        httpx.post(f"{url}/api/generate", json={"model": "tiny-plain", "keep_alive": 0})
        deadline = time.monotonic() + 20
        while httpx.get(f"{url}/api/ps").json()["models"] and time.monotonic() < deadline:
            time.sleep(0.05)
        for route, body in (
            ("/api/chat", {"think": True}),
            ("/v1/chat/completions", {"think": True}),
            ("/v1/chat/completions", {"logprobs": True, "tools": [{"type": "function", "function": {"name": "f"}}]}),
        ):
            refused = httpx.post(f"{url}{route}", json={"model": "tiny-plain", "messages": ask, **body})
            assert refused.status_code == 400 and "does not support" in refused.text, refused.text
        assert httpx.get(f"{url}/api/ps").json()["models"] == []  # refused without loading it
