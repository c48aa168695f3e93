"""One server, three engines side by side: a llama.cpp model, the same GGUF on OpenVINO's CPU
device, and an upstream server's model, asked through the real openai and ollama clients; then a
swap between the engines when only one model may be loaded. Skipped without the openvino extra."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import httpx
import ollama
import openai
import pytest
from conftest import ROOT
from serving import TEST_SETTINGS, isolated_store, running_server

pytest.importorskip("openvino_genai")

CACHE = str(ROOT / "models" / "openvino-cache")  # kept between runs, like the tiny models: later runs load in seconds
LLAMA, OPENVINO, UPSTREAM = "tiny-r1-qwen", "tiny-r1-qwen@openvino", "up/tiny-r1-qwen-b"
GREEDY = {"temperature": 0, "max_tokens": 10}
ASK = [{"role": "user", "content": "Why is the sky blue?"}]


def wait_ready(url: str, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while httpx.get(f"{url}/health").status_code != 200:
        assert time.monotonic() < deadline, "the models did not load"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def front(tiny_model, tiny_model_b, tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    with isolated_store(root), pytest.MonkeyPatch.context() as patch:
        patch.setenv("R1LOCAL_OPENVINO_CACHE", CACHE)
        with running_server(replace(TEST_SETTINGS, models=(str(tiny_model_b),))) as upstream:
            settings = replace(
                TEST_SETTINGS,
                models=(str(tiny_model), f"{tiny_model}@openvino"),
                max_loaded=2,
                upstreams=(("up", f"{upstream}/v1"),),
            )
            with running_server(settings, ready=False) as url:
                wait_ready(url)
                yield url


def test_models_and_ps_name_each_engine(front):
    client = openai.OpenAI(base_url=f"{front}/v1", api_key="unused", max_retries=0)
    engines = {m.id: m.model_extra["engine"] for m in client.models.list().data}
    assert engines == {LLAMA: "llama.cpp", OPENVINO: "openvino", UPSTREAM: "upstream"}
    running = {m["name"]: m for m in httpx.get(f"{front}/api/ps").json()["models"]}
    assert (running[LLAMA]["engine"], running[OPENVINO]["engine"]) == ("llama.cpp", "openvino")
    assert running[OPENVINO]["device"] == "CPU"


def test_openai_client_is_answered_by_every_engine(front):
    client = openai.OpenAI(base_url=f"{front}/v1", api_key="unused", max_retries=0)
    replies = {
        name: client.chat.completions.create(model=name, messages=ASK, **GREEDY) for name in (LLAMA, OPENVINO, UPSTREAM)
    }
    for name, reply in replies.items():
        assert reply.model == name and reply.choices[0].message.reasoning_content, name
        assert reply.usage.completion_tokens == 10
    # the same GGUF, prompt and greedy choice: llama.cpp and OpenVINO agree
    assert replies[LLAMA].choices[0].message.reasoning_content == replies[OPENVINO].choices[0].message.reasoning_content
    assert replies[LLAMA].usage.prompt_tokens == replies[OPENVINO].usage.prompt_tokens
    chunks = list(client.chat.completions.create(model=OPENVINO, messages=ASK, stream=True, **GREEDY))
    assert sum(bool(c.choices and c.choices[0].delta.model_extra.get("reasoning_content")) for c in chunks) > 1


def test_what_only_llama_cpp_does_is_a_clear_400_on_openvino(front):
    client = openai.OpenAI(base_url=f"{front}/v1", api_key="unused", max_retries=0)
    tool = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    asks = {
        "tools": dict(tools=[tool]),
        "think_budget": dict(extra_body={"reasoning_budget_tokens": 4}),
        "logprobs": dict(logprobs=True),
    }
    for param, extra in asks.items():
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=OPENVINO, messages=ASK, **GREEDY, **extra)
        assert refused.value.body["param"] == param and "OpenVINO" in refused.value.body["message"]
    with pytest.raises(openai.BadRequestError, match="embeddings"):
        client.embeddings.create(model=OPENVINO, input="hi")
    # what TextOutput does works there too: reasoning tokens are counted as on llama.cpp
    counted = [
        client.chat.completions.create(
            model=name, messages=ASK, **GREEDY
        ).usage.completion_tokens_details.reasoning_tokens
        for name in (OPENVINO, LLAMA)
    ]
    assert counted[0] == counted[1] > 0


def test_ollama_client_is_answered_by_every_engine(front):
    client = ollama.Client(host=front)
    for name in (LLAMA, OPENVINO, UPSTREAM):
        answer = client.chat(model=name, messages=ASK, options={"temperature": 0, "num_predict": 8})
        assert answer.message.thinking and answer.done, name
    off = client.chat(
        model=OPENVINO,
        messages=[{"role": "user", "content": "hi"}],
        think=False,
        options={"temperature": 0, "num_predict": 8},
    )
    assert off.message.content and not off.message.thinking
    parts = list(
        client.generate(
            model=OPENVINO,
            prompt="The capital of France is",
            raw=True,
            stream=True,
            options={"temperature": 0, "num_predict": 8},
        )
    )
    assert parts[-1].done and parts[-1].eval_count == 8


def test_swap_between_engines_with_one_model_loaded(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("swap")
    with isolated_store(root), pytest.MonkeyPatch.context() as patch:
        patch.setenv("R1LOCAL_OPENVINO_CACHE", CACHE)
        settings = replace(TEST_SETTINGS, models=(str(tiny_model), f"{tiny_model}@openvino"), max_loaded=1)
        with running_server(settings, ready=False) as url:
            wait_ready(url)
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            for name in (LLAMA, OPENVINO, LLAMA):
                reply = client.chat.completions.create(model=name, messages=ASK, **GREEDY)
                assert reply.choices[0].message.reasoning_content
                (loaded,) = httpx.get(f"{url}/api/ps").json()["models"]
                assert loaded["name"] == name


def test_run_answers_from_the_openvino_engine_and_says_so(tiny_model, monkeypatch):
    from typer.testing import CliRunner

    from r1local.cli import app

    monkeypatch.setenv("R1LOCAL_OPENVINO_CACHE", CACHE)
    result = CliRunner().invoke(
        app, ["run", f"{tiny_model}@openvino", "Why?", "--json", "--max-tokens", "8", "--temperature", "0"]
    )
    assert result.exit_code == 20, result.output  # stopped at --max-tokens
    reply = json.loads(result.stdout[result.stdout.index("{") :])
    assert (reply["engine"], reply["device"], reply["finish_reason"]) == ("openvino", "CPU", "length")
    assert reply["reasoning"] and reply["usage"]["completion_tokens"] == 8


def test_slots_lists_the_llama_cpp_slots_beside_an_openvino_model(front):
    # /slots read a llama.cpp scheduler from every loaded model: with OpenVINO beside it, a 500
    slots = httpx.get(f"{front}/slots")
    assert slots.status_code == 200
    assert {s["model"] for s in slots.json()} == {LLAMA} and len(slots.json()) == TEST_SETTINGS.parallel
