"""Debian's Chromium driven by Playwright, for the chat page's tests (skipped where either is missing),
and an upstream whose model echoes the user, so that a test chooses the reply the page renders."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@contextmanager
def launched_browser() -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api")
    if chromium() is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


class EchoAndRecord(BaseHTTPRequestHandler):
    """An OpenAI-compatible upstream whose one model answers with the user's last message (a 500
    error when it contains FAIL), and, on any other path, the other host a hostile reply tries to
    reach: it records every such request."""

    hits: list[str] = []
    FRAMER = ""  # what /frame serves: a page on this other origin that frames the chat page

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            return self._send("application/json", json.dumps({"data": [{"id": "echo", "object": "model"}]}))
        self.hits.append(f"GET {self.path}")
        self._send("text/html", self.FRAMER if self.path == "/frame" else "<html><body>elsewhere</body></html>")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v1/chat/completions":
            self.hits.append(f"POST {self.path}")
            return self._send("text/plain", "")
        text = json.loads(body)["messages"][-1]["content"]
        if "FAIL" in text:
            return self._send("application/json", json.dumps({"error": {"message": "the echo broke"}}), 500)
        pieces = [text[i : i + 40] for i in range(0, len(text), 40)]  # streamed in pieces, as a model would
        chunks = [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
        chunks.append(
            {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": len(pieces)},
            }
        )
        self._send("text/event-stream", "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n")

    def _send(self, kind: str, text: str, status: int = 200) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def echo_upstream() -> Iterator[str]:
    """The echo upstream on a loopback port: yields its base URL (serve it as NAME with f"{url}/v1")."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoAndRecord)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
