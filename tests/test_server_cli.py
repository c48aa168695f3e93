"""`r1local serve` from the command line: a real process, and the errors it gives before binding."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from r1local.cli import app

runner = CliRunner()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["/nowhere/model.gguf"], 3, "No such file"),
        (["r1:7b"], 3, "r1local pull"),
        (["--keep-alive", "soon"], 2, "not a duration"),
        (["--keep-alive", "0"], 2, "--keep-alive 0"),
    ],
)
def test_serve_refuses_bad_arguments_before_binding(args, code, words, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    result = runner.invoke(app, ["serve", *args])
    assert result.exit_code == code, result.output
    assert words in result.output


def test_serve_runs_a_model_given_by_path(tiny_model, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(tmp_path / "hf"),
        "R1LOCAL_HOME": str(tmp_path / "home"),
        "R1LOCAL_API_KEY": "k",
    }
    cmd = [
        sys.executable,
        "-c",
        "from r1local.cli import main; main()",
        "serve",
        str(tiny_model),
        "--port",
        str(port),
        "--ctx",
        "256",
        "--parallel",
        "1",
        "--threads",
        "1",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.1)
        assert httpx.get(f"{url}/v1/models").status_code == 401  # the key came from R1LOCAL_API_KEY
        reply = httpx.post(
            f"{url}/v1/chat/completions",
            headers={"Authorization": "Bearer k"},
            json={"model": tiny_model.stem, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
        )
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 3
    finally:
        proc.terminate()  # uvicorn shuts down gracefully, then re-raises the signal
        log = proc.communicate(timeout=20)[0].decode()
    assert "unloading tiny-r1-qwen" in log and "Application shutdown complete" in log
