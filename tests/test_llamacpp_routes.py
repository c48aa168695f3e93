"""llama-server's native API as its clients use it: /completion (whole and streamed), /tokenize
and /detokenize, /apply-template, /props, /slots, and OpenAI's routes without the /v1 prefix."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from serving import serving

MODEL = "tiny-r1-qwen"


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model) as base:
        yield base


def llama_server_stream(url: str, body: dict) -> list[dict]:
    """How clients written for llama-server read /completion: one JSON object per `data:` line."""
    events = []
    with httpx.stream("POST", f"{url}/completion", json={**body, "stream": True}, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    return events


def test_completion_whole_and_streamed_agree(url):
    body = {"prompt": "Once upon a time", "n_predict": 12, "temperature": 0, "cache_prompt": True}
    whole = httpx.post(f"{url}/completion", json=body).json()
    assert whole["stop"] and whole["tokens_predicted"] == 12 and whole["stop_type"] == "limit"
    assert whole["tokens_evaluated"] > 0 and whole["timings"]["predicted_n"] == 12
    events = llama_server_stream(url, body)
    assert all(not e["stop"] for e in events[:-1]) and events[-1]["stop"]
    assert "".join(e["content"] for e in events) == whole["content"]


def test_tokenize_detokenize_round_trip(url):
    tokens = httpx.post(f"{url}/tokenize", json={"content": "Hello world"}).json()["tokens"]
    assert tokens and all(isinstance(t, int) for t in tokens)
    assert httpx.post(f"{url}/detokenize", json={"tokens": tokens}).json()["content"] == "Hello world"
    pieces = httpx.post(f"{url}/tokenize", json={"content": "Hello world", "with_pieces": True}).json()["tokens"]
    assert "".join(p["piece"] for p in pieces) == "Hello world"
    bad = httpx.post(f"{url}/detokenize", json={"tokens": [-1]})
    assert bad.status_code == 400


def test_apply_template_props_slots(url):
    prompt = httpx.post(f"{url}/apply-template", json={"messages": [{"role": "user", "content": "Hi"}]}).json()
    assert prompt["prompt"].endswith("<｜User｜>Hi<｜Assistant｜><think>\n")
    props = httpx.get(f"{url}/props").json()
    assert props["default_generation_settings"]["n_ctx"] == 512 and props["total_slots"] == 2
    assert props["model_path"] == "tiny-r1-qwen.gguf" and "<｜Assistant｜>" in props["chat_template"]
    slots = httpx.get(f"{url}/slots").json()
    assert [s["id"] for s in slots] == [0, 1] and not any(s["is_processing"] for s in slots)
    assert httpx.post(f"{url}/slots", json={}).status_code == 405  # read-only


def test_openai_routes_without_the_v1_prefix(url):
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list().data] == [MODEL]
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    assert reply.usage.completion_tokens == 3


def count(url: str, text: str) -> int:
    return len(httpx.post(f"{url}/tokenize", json={"content": text}).json()["tokens"])


def test_infill_as_code_editors_call_it(url):
    """llama-server's /infill (llama.vscode and other editor plugins): the code around the cursor,
    other files as context, `prompt` as the start of the answer."""
    before, after, started = "def add(a, b):\n", "\n    return c\n", "    c ="
    body = {"input_prefix": before, "input_suffix": after, "n_predict": 6, "temperature": 0}
    whole = httpx.post(f"{url}/infill", json=body).json()
    assert whole["tokens_evaluated"] == count(url, before) + count(url, after) + 3  # the model's FIM tokens
    same = openai.OpenAI(base_url=f"{url}/v1", api_key="none").completions.create(
        model=MODEL, prompt=before, suffix=after, max_tokens=6, temperature=0
    )
    assert whole["content"] == same.choices[0].text  # /v1/completions' suffix builds the same prompt

    started_body = {**body, "prompt": started}
    assert httpx.post(f"{url}/infill", json=started_body).json()["tokens_evaluated"] == whole[
        "tokens_evaluated"
    ] + count(url, started)

    other = {"filename": "util.py", "text": "def sub(a, b):\n    return a - b\n"}
    with_file = httpx.post(f"{url}/infill", json={**body, "input_extra": [other]}).json()
    assert count(url, "<|repo_name|><|file_sep|>") == 2  # R1's Qwen vocabulary has the repository-level tokens
    # <|repo_name|>myproject\n<|file_sep|>util.py\n...<|file_sep|>filename\n<|fim_prefix|>...
    repo_layout = 3 + count(url, "myproject\n") + count(url, f"util.py\n{other['text']}") + count(url, "filename\n")
    assert with_file["tokens_evaluated"] == whole["tokens_evaluated"] + repo_layout

    with httpx.stream("POST", f"{url}/infill", json={**body, "stream": True}, timeout=60) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1]["stop"] and "".join(e["content"] for e in events) == whole["content"]
