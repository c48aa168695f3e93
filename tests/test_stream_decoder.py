"""One decoder of OpenAI streams, for the upstream engine and the CLI's client of a resident server:
malformed chunks from another program end the stream with one clear error (streamed and whole, on
the OpenAI and Ollama routes) instead of killing the thread that reads them and leaving the client
waiting forever; reasoning arrives as text whichever field or tag carries it."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server

from r1local.client import ResidentServer
from r1local.engine.events import ContentDelta, Done, ReasoningDelta
from r1local.engine.openai_stream import StreamDecoder
from r1local.request import ChatRequest

GOOD = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
MALFORMED = {  # model id -> the line that follows a good chunk
    "list": "data: [1,2]",
    "number": "data: 5",
    "delta-text": 'data: {"choices":[{"delta":"str"}]}',
    "content-number": 'data: {"choices":[{"delta":{"content":12345}}]}',
    "no-choices": 'data: {"content":12345}',
    "null-choice": 'data: {"choices":[null]}',
    "reasoning-number": 'data: {"choices":[{"delta":{"reasoning_content":7}}]}',
    "usage-text": 'data: {"choices":[],"usage":{"prompt_tokens":"many"}}',
    "not-json": "data: {oops",
}
HANG_S = 30  # the upstream keeps the connection open this long after the bad chunk
TIMEOUT_S = 10  # the client gives up (the test fails) well before


class Malformed(BaseHTTPRequestHandler):
    """Streams one good chunk, then the model's malformed line, then holds the connection open."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        data = json.dumps({"data": [{"id": name} for name in MALFORMED]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        model = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["model"]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(f"data: {json.dumps(GOOD)}\n\n{MALFORMED[model]}\n\n".encode())
            self.wfile.flush()
            deadline = time.monotonic() + HANG_S
            while time.monotonic() < deadline:  # until the reader hangs up
                time.sleep(0.2)
                self.wfile.write(b": still here\n\n")
                self.wfile.flush()
        except OSError:
            pass


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    fake = ThreadingHTTPServer(("127.0.0.1", 0), Malformed)
    fake.daemon_threads = True
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    upstream = f"http://127.0.0.1:{fake.server_port}"
    with isolated_store(tmp_path_factory.mktemp("store")):
        with running_server(replace(TEST_SETTINGS, upstreams=(("bad", f"{upstream}/v1"),))) as front:
            yield front, upstream
    fake.shutdown()


@pytest.mark.parametrize("model", MALFORMED)
@pytest.mark.parametrize("stream", [True, False])
def test_openai_route_ends_with_an_error(servers, model, stream):
    front, _ = servers
    body = {"model": f"bad/{model}", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    reply = httpx.post(f"{front}/v1/chat/completions", json=body, timeout=TIMEOUT_S)
    if stream:
        assert reply.status_code == 200
        events = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: {")]
        assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices")) == "Hi"
        error = events[-1]["error"]["message"]
    else:
        assert reply.status_code == 500
        error = reply.json()["error"]["message"]
    assert "bad: a malformed stream chunk" in error


@pytest.mark.parametrize("model", ["list", "reasoning-number"])
@pytest.mark.parametrize("stream", [True, False])
def test_ollama_route_ends_with_an_error(servers, model, stream):
    front, _ = servers
    body = {"model": f"bad/{model}", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    reply = httpx.post(f"{front}/api/chat", json=body, timeout=TIMEOUT_S)
    lines = [json.loads(line) for line in reply.text.splitlines() if line]
    assert "malformed stream chunk" in lines[-1]["error"]
    assert reply.status_code == (200 if stream else 500)


def test_the_server_keeps_serving_after_them(servers):
    front, _ = servers
    assert httpx.get(f"{front}/health", timeout=TIMEOUT_S).status_code == 200
    assert not [t for t in threading.enumerate() if t.name == "r1local-upstream"]  # every relay ended


def test_the_cli_client_ends_with_an_error_too(servers):
    """RemoteStream reads the resident server's stream with the same decoder."""
    _, upstream = servers
    client = ResidentServer(upstream, timeout=TIMEOUT_S)
    try:
        events = list(client.chat("content-number", ChatRequest([{"role": "user", "content": "hi"}])))
    finally:
        client.close()
    assert events[0] == ContentDelta("Hi")
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "error" and "content is not a string" in done.error


def test_reasoning_in_any_field_or_tag_is_reasoning():
    decoder = StreamDecoder()
    lines = [
        {"choices": [{"delta": {"reasoning": "a"}}]},
        {"choices": [{"delta": {"reasoning_content": "b"}}]},
        {"choices": [{"delta": {"content": "<think>c</think>"}}]},
        {"choices": [{"delta": {"content": "d"}}]},
        {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    ]
    events = [e for line in lines for e in decoder.feed(f"data: {json.dumps(line)}")] + decoder.flush()
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "abc"
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "d"
    assert decoder.finish == "stop" and (decoder.prompt_tokens, decoder.completion_tokens) == (3, 4)
    assert decoder.error is None
