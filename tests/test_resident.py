"""Models that stay loaded: run and chat answer through a running r1local serve, ps and stop see and
unload what it holds, serve --detach runs it in the background until `r1local stop`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace

import httpx
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server

FAST = ["--temperature", "0", "--max-tokens", "6"]


def r1local(*args: str, url: str, home=None, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "R1LOCAL_HOST": url, "COLUMNS": "100"}
    if home is not None:
        env["R1LOCAL_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "r1local", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """A server holding the tiny model under its file stem, a name only the server knows."""
    with isolated_store(tmp_path_factory.mktemp("store")):
        with running_server(replace(TEST_SETTINGS, models=(str(tiny_model),))) as url:
            yield url


def test_run_answers_through_the_running_server(server, tiny_model):
    result = r1local("run", tiny_model.stem, "hello", "--no-think", "--json", *FAST, url=server)
    assert result.returncode == 20, result.stderr  # 6 tokens: cut at --max-tokens
    answer = json.loads(result.stdout)
    assert answer["usage"]["completion_tokens"] == 6 and answer["content"]
    assert answer["timings"]["ttft_s"] > 0
    # the same prompt in-process, from the file, gives the same greedy answer
    local = r1local(
        "run", str(tiny_model), "hello", "--no-think", "--json", "--ctx", "512", "--local", *FAST, url=server
    )
    assert json.loads(local.stdout)["engine"] == "llama.cpp"
    assert json.loads(local.stdout)["content"] == answer["content"]
    # a name the server does not know, without a server that knows it: the in-process error
    missing = r1local("run", "no-such-model", "hi", url=server)
    assert missing.returncode == 3 and "Unknown model name" in missing.stderr


def test_server_errors_keep_their_exit_codes(server, tiny_model):
    result = r1local("run", tiny_model.stem, "word " * 600, *FAST, url=server)
    assert result.returncode == 5, result.stderr
    assert "context" in result.stderr and "Traceback" not in result.stderr


def test_reasoning_cut_by_max_tokens_through_the_server(server, tiny_model):
    result = r1local("run", tiny_model.stem, "hello", *FAST, url=server)
    assert result.returncode == 20
    assert "reasoning used all 6 tokens of --max-tokens" in result.stderr


def test_ps_and_stop(server, tiny_model):
    listed = r1local("ps", url=server)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    assert row.split()[0] == tiny_model.stem and "CPU" in row and "forever" in row
    assert json.loads(r1local("ps", "--json", url=server).stdout)[0]["context_length"] == 512

    assert r1local("stop", "not-loaded", url=server).returncode == 2
    stopped = r1local("stop", tiny_model.stem, url=server)
    assert stopped.returncode == 0 and f"Unloaded {tiny_model.stem}." in stopped.stdout
    deadline = time.monotonic() + 10
    while httpx.get(f"{server}/api/ps").json()["models"]:
        assert time.monotonic() < deadline, "the model stayed loaded"
        time.sleep(0.05)
    assert "No model is loaded" in r1local("ps", url=server).stderr
    # the next request loads it again
    assert r1local("run", tiny_model.stem, "hi", "--no-think", *FAST, url=server).returncode == 20


def test_without_a_server_ps_says_how_to_start_one(tmp_path):
    result = r1local("ps", url=f"http://127.0.0.1:{_free_port()}")
    assert result.returncode == 2 and "r1local serve --detach" in result.stderr


def test_serve_detach_then_stop(tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    started = r1local("serve", "--port", str(port), "--detach", url=url, home=tmp_path)
    assert started.returncode == 0, started.stderr
    pid = json.loads((tmp_path / "serve.pid").read_text())["pid"]
    assert f"pid {pid}" in started.stdout and httpx.get(f"{url}/health").status_code == 200
    again = r1local("serve", "--port", str(port + 1), "--detach", url=url, home=tmp_path)
    assert again.returncode == 2 and "already runs" in again.stderr
    stopped = r1local("stop", url=url, home=tmp_path)
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
    assert not (tmp_path / "serve.pid").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health")
    assert "serve" in (tmp_path / "serve.log").read_text()
    assert r1local("stop", url=url, home=tmp_path).returncode == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
