"""An OpenAI-compatible server fronted as an upstream: listed next to the local models, answered
through the real openai and ollama clients with reasoning mapped both ways, its errors passed
through with their status, and marked down (not crashing) when it stops answering."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import ollama
import openai
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server
from typer.testing import CliRunner

from r1local.cli import app
from r1local.cli.serve import upstreams
from r1local.errors import UsageError

LOCAL, REMOTE = "tiny-r1-qwen-b", "npu/tiny-r1-qwen"
GREEDY = {"temperature": 0, "max_tokens": 12}


class ThinkInContent(BaseHTTPRequestHandler):
    """A server that, like some runtimes, streams R1's reasoning as a <think> block in the content."""

    PIECES = ["<th", "ink>\nweighing", " it up\n</thi", "nk>\n\nThe answer", " is 4."]

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._send(200, "application/json", json.dumps({"data": [{"id": "r1-think", "object": "model"}]}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["model"] != "r1-think":
            self._send(404, "application/json", json.dumps({"error": {"message": "no such model here"}}).encode())
            return
        chunks = [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in self.PIECES]
        chunks.append(
            {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 5},
            }
        )
        stream = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        self._send(200, "text/event-stream", stream.encode())

    def _send(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def servers(tiny_model, tiny_model_b, tmp_path_factory):
    """An r1local server as the upstream (a real OpenAI-compatible server), a <think>-in-content
    server, and the front server that fronts both next to its own model."""
    think = ThreadingHTTPServer(("127.0.0.1", 0), ThinkInContent)
    threading.Thread(target=think.serve_forever, daemon=True).start()
    with isolated_store(tmp_path_factory.mktemp("store")):
        upstream_cm = running_server(replace(TEST_SETTINGS, models=(str(tiny_model),)))
        upstream = upstream_cm.__enter__()
        settings = replace(
            TEST_SETTINGS,
            models=(str(tiny_model_b),),
            upstreams=(("npu", f"{upstream}/v1"), ("think", f"http://127.0.0.1:{think.server_port}/v1")),
        )
        with running_server(settings) as front:
            yield {"front": front, "upstream_cm": upstream_cm}
            upstream_cm.__exit__(None, None, None)  # idempotent: the down test may have stopped it
    think.shutdown()


@pytest.fixture(scope="module")
def client(servers):
    return openai.OpenAI(base_url=f"{servers['front']}/v1", api_key="unused", max_retries=0)


def test_upstream_models_are_listed_next_to_local_ones(servers, client):
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {LOCAL, REMOTE, "think/r1-think"}
    assert models[REMOTE].owned_by == "npu" and models[REMOTE].model_extra["engine"] == "upstream"
    assert models[LOCAL].model_extra["engine"] == "llama.cpp"
    tags = {m.model for m in ollama.Client(host=servers["front"]).list().models}
    assert tags == {LOCAL, REMOTE, "think/r1-think"}


def test_openai_client_gets_the_upstreams_reasoning_apart(client):
    reply = client.chat.completions.create(model=REMOTE, messages=[{"role": "user", "content": "Hi"}], **GREEDY)
    message = reply.choices[0].message
    assert message.reasoning_content and message.content == ""  # a random-weight R1 never closes <think>
    assert reply.usage.completion_tokens == 12 and reply.model == REMOTE
    local = client.chat.completions.create(model=LOCAL, messages=[{"role": "user", "content": "Hi"}], **GREEDY)
    assert local.choices[0].message.reasoning_content


def test_streaming_through_the_upstream(client):
    chunks = list(
        client.chat.completions.create(
            model=REMOTE, messages=[{"role": "user", "content": "Hi"}], stream=True, **GREEDY
        )
    )
    reasoning = [c.choices[0].delta.model_extra.get("reasoning_content") for c in chunks if c.choices]
    assert sum(bool(r) for r in reasoning) > 1
    assert chunks[-1].choices[0].finish_reason == "length"


def test_think_block_in_content_becomes_reasoning_for_both_clients(servers, client):
    reply = client.chat.completions.create(model="think/r1-think", messages=[{"role": "user", "content": "2+2?"}])
    assert reply.choices[0].message.reasoning_content == "weighing it up"
    assert reply.choices[0].message.content == "The answer is 4."
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (7, 5)
    answer = ollama.Client(host=servers["front"]).chat(
        model="think/r1-think", messages=[{"role": "user", "content": "2+2?"}]
    )
    assert answer.message.thinking == "weighing it up" and answer.message.content == "The answer is 4."


def test_ollama_client_streams_the_upstreams_thinking(servers):
    parts = list(
        ollama.Client(host=servers["front"]).chat(
            model=REMOTE,
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            options={"temperature": 0, "num_predict": 8},
        )
    )
    assert any(p.message.thinking for p in parts) and parts[-1].done


def test_upstream_errors_pass_through_with_their_status(client):
    with pytest.raises(openai.NotFoundError, match="no such model here"):
        client.chat.completions.create(model="think/other", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError, match="r1local pull"):  # the upstream knows r1:7b but lacks it
        client.chat.completions.create(model="npu/r1:7b", messages=[{"role": "user", "content": "x"}])


def test_upstream_that_stops_is_marked_down_and_the_rest_keeps_serving(servers, client):
    servers["upstream_cm"].__exit__(None, None, None)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=REMOTE, messages=[{"role": "user", "content": "Hi"}], **GREEDY)
    assert info.value.status_code == 503 and "not answering" in info.value.message
    assert {m.id for m in client.models.list().data} == {LOCAL, "think/r1-think"}
    assert client.chat.completions.create(model=LOCAL, messages=[{"role": "user", "content": "Hi"}], **GREEDY)
    assert httpx.get(f"{servers['front']}/health").status_code == 200


def test_upstreams_come_from_options_and_the_config_file(tmp_path, monkeypatch):
    monkeypatch.setenv("R1LOCAL_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text(
        '[upstreams]\nfoundry = "http://127.0.0.1:5273/v1"\nlemonade = "http://x:8000/api/v1/"\n'
    )
    assert dict(upstreams(["lemonade=http://127.0.0.1:8000/api/v1"])) == {
        "foundry": "http://127.0.0.1:5273/v1",
        "lemonade": "http://127.0.0.1:8000/api/v1",
    }
    for bad in ("noequals", "bad name=http://x", "x=ftp://host", "x="):
        with pytest.raises(UsageError, match="Not an upstream"):
            upstreams([bad])
    result = CliRunner().invoke(app, ["serve", "--upstream", "oops"])
    assert result.exit_code == 2 and "NAME=URL" in result.output
