"""The command line against odd input: numbers out of range, bytes that are not UTF-8, folders it
cannot write, Ctrl-C and SIGTERM, and where the API key comes from."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from r1local.cli import app
from r1local.cli.backend import ctrl_c_stops_loading
from r1local.cli.serve import SHUTDOWN_DEADLINE_S
from r1local.engine.model import Model
from r1local.errors import MAX_TOKENS_EXIT, Cancelled

runner = CliRunner()
FAST = ["--max-tokens", "4", "--ctx", "256", "--threads", "1"]
ANSWERED = (0, MAX_TOKENS_EXIT)  # 4 tokens may end the output at the limit
ENTRY = [sys.executable, "-c", "from r1local.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "args, option",
    [
        (["run", "MODEL", "hi", "--threads", "65536"], "--threads"),  # once a segfault in llama.cpp
        (["run", "MODEL", "hi", "--temperature", "100"], "--temperature"),  # once a pydantic traceback
        (["run", "MODEL", "hi", "--temperature", "nan"], "--temperature"),
        (["run", "MODEL", "hi", "--ctx", "0"], "--ctx"),
        (["serve", "--port", "70000"], "--port"),  # once a traceback from the socket layer
        (["serve", "--parallel", "100000"], "--parallel"),
    ],
)
def test_numbers_out_of_range_are_one_clear_line(tiny_model, args, option):
    result = runner.invoke(app, [str(tiny_model) if a == "MODEL" else a for a in args])
    assert result.exit_code == 2, result.output
    assert option in result.output and "Traceback" not in result.output


def test_bytes_that_are_not_utf8_are_replaced_not_a_traceback(tiny_model):
    bad = b"caf\xe9 \xff\xfe"
    argv = subprocess.run([*ENTRY, "run", str(tiny_model), *FAST, bad], capture_output=True, timeout=120)
    assert argv.returncode in ANSWERED and b"Traceback" not in argv.stderr, argv.stderr.decode(errors="replace")
    piped = subprocess.run([*ENTRY, "run", str(tiny_model), *FAST], input=bad, capture_output=True, timeout=120)
    assert piped.returncode in ANSWERED and b"Traceback" not in piped.stderr, piped.stderr.decode(errors="replace")


def test_a_home_folder_that_cannot_be_written_does_not_stop_a_run(tiny_model, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("R1LOCAL_HOME", str(tmp_path / "file" / "home"))  # a file where a folder should be
    result = runner.invoke(app, ["run", str(tiny_model), *FAST, "hi"])
    assert result.exit_code in ANSWERED and "Traceback" not in result.output, result.output


def test_ctrl_c_during_a_load_stops_the_load_and_is_not_swallowed(tiny_model):
    # llama.cpp logs through a ctypes callback while it loads; a KeyboardInterrupt raised there was
    # swallowed. Now Ctrl-C stops the load through llama.cpp's progress callback, then interrupts.
    with pytest.raises(KeyboardInterrupt) as interrupt:
        with ctrl_c_stops_loading() as pressed:
            os.kill(os.getpid(), signal.SIGINT)
            Model.load(tiny_model, n_ctx=256, n_threads=1, abort=pressed)
    assert isinstance(interrupt.value.__context__, Cancelled)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_during_an_answer_prints_it_and_exits_130(tiny_model):
    cmd = [*ENTRY, "run", str(tiny_model), "--max-tokens", "100000", "--ctx", "4096", "--threads", "1", "Go on"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stderr.read(1)  # the reasoning streams to stderr
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert first and proc.returncode == 130, err.decode(errors="replace")
    assert b"Traceback" not in err


def _serve(tiny_model, port: int, *extra: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [*ENTRY, "serve", str(tiny_model), "--port", str(port), "--threads", "1", *extra]
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_ctrl_c_while_serve_loads_exits_130_without_a_traceback(tiny_model):
    proc = _serve(tiny_model, free_port(), "--ctx", "256")
    seen = b""
    while b"loading" not in seen:  # the model's load has begun
        line = proc.stdout.readline()
        assert line, seen.decode()
        seen += line
    proc.send_signal(signal.SIGINT)
    log = seen + proc.communicate(timeout=SHUTDOWN_DEADLINE_S + 10)[0]
    assert proc.returncode == 130 and b"Traceback" not in log, log.decode()


def test_sigterm_during_long_streams_exits_within_the_deadline(tiny_model, tmp_path):
    key = tmp_path / "key"
    key.write_text("s3cret\n")
    port = free_port()
    proc = _serve(
        tiny_model, port, "--ctx", "8192", "--parallel", "2", "--api-key-file", str(key), env={"R1LOCAL_API_KEY": ""}
    )
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": "Bearer s3cret"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        assert httpx.get(f"{url}/v1/models").status_code == 401  # the key came from the file
        body = {
            "model": tiny_model.stem,
            "messages": [{"role": "user", "content": "Go on"}],
            "max_tokens": 100000,
            "ignore_eos": True,
            "stream": True,
        }
        streaming = threading.Barrier(3)

        def stream() -> None:
            try:
                with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=auth, timeout=120) as r:
                    lines = r.iter_lines()
                    next(lines)
                    streaming.wait()
                    for _ in lines:
                        pass
            except httpx.HTTPError:
                pass

        clients = [threading.Thread(target=stream, daemon=True) for _ in range(2)]
        for client in clients:
            client.start()
        streaming.wait(timeout=60)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        proc.wait(timeout=SHUTDOWN_DEADLINE_S + 5)
        assert time.monotonic() - started <= SHUTDOWN_DEADLINE_S + 2
    finally:
        proc.kill()
        proc.wait()


def test_the_api_key_can_come_from_a_file_and_the_help_says_why(tmp_path):
    help_text = runner.invoke(app, ["serve", "--help"], terminal_width=200).output
    assert "R1LOCAL_API_KEY" in help_text and "--api-key-file" in help_text and "ps" in help_text
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path, words in ((empty, "is empty"), (tmp_path / "missing", "Cannot read")):
        result = runner.invoke(app, ["serve", "--api-key-file", str(path)])
        assert result.exit_code == 2 and words in result.output, result.output
