"""A real uvicorn server on a loopback port, in a thread of the test process, for the server tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import httpx
import uvicorn

from r1local.server import ServerSettings, create_app

# Small contexts and few slots keep the tests fast on two cores.
TEST_SETTINGS = ServerSettings(parallel=2, ctx=512, n_threads=1, check_memory=False, keep_alive_s=None)


@contextmanager
def running_server(settings: ServerSettings = TEST_SETTINGS, ready: bool = True, **factory) -> Iterator[str]:
    """Serve `create_app(settings)` on 127.0.0.1 and yield its base URL; stop it afterwards.
    With ready=True, wait until /health says the command-line models are loaded."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(replace(settings, port=port), **factory)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        while ready and httpx.get(f"{url}/health").status_code != 200:
            assert time.monotonic() < deadline, "the models did not load"
            time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def isolated_store(root) -> Iterator[None]:
    """An empty model cache and r1local home, so the user's downloads never leak into a test."""
    import pytest

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_CACHE", str(root / "hf-cache"))
        patch.setenv("R1LOCAL_HOME", str(root / "r1local-home"))
        patch.delenv("R1LOCAL_API_KEY", raising=False)
        yield


@contextmanager
def serving(tmp_path_factory, *models, **settings) -> Iterator[str]:
    """A server for the given model files, with an empty store of its own; `settings` override TEST_SETTINGS."""
    with isolated_store(tmp_path_factory.mktemp("store")):
        with running_server(replace(TEST_SETTINGS, models=tuple(map(str, models)), **settings)) as base:
            yield base


def openai_client(url: str):
    import openai

    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
