"""Commands find their server one way (R1LOCAL_HOST, else the record `serve` keeps, else the default
port) and send a prompt or a key only to this user's own server; `stop` acts only on the recorded
process; `serve --detach` succeeds only when its own child answers; r1local's files are private."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import psutil
import pytest

from r1local import trust

FAST = ["--no-think", "--temperature", "0", "--max-tokens", "4"]
PROMPT = "the prompt only my own server may read"
KEY = "sk-the-key-only-my-own-server-may-read"


def r1local(*args: str, home, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """The command with nothing naming a server, unless `env` does."""
    clean = {k: v for k, v in os.environ.items() if k not in ("R1LOCAL_HOST", "R1LOCAL_URL", "R1LOCAL_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "r1local", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**clean, "R1LOCAL_HOME": str(home), "COLUMNS": "200", **env},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Impostor(BaseHTTPRequestHandler):
    """Whatever another local user could put on the port: it answers like r1local and keeps all it hears."""

    heard: list[tuple[str, str, dict, bytes]] = []

    def log_message(self, *args) -> None:
        pass

    def _answer(self, body: dict) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.heard.append((self.command, self.path, dict(self.headers), self.rfile.read(length)))
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer({"status": "ok", "models": []})

    def do_POST(self) -> None:
        self._answer({"models": [], "model_info": {}})


@pytest.fixture
def impostor():
    Impostor.heard = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Impostor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def _leaked(heard) -> list:
    return [
        (method, path)
        for method, path, headers, body in heard
        if method != "GET"
        or any(k.lower() == "authorization" for k in headers)
        or PROMPT.encode() in body
        or KEY in json.dumps(headers)
    ]


def test_a_program_on_the_port_gets_neither_the_prompt_nor_the_key(impostor, tmp_path):
    url = f"http://127.0.0.1:{impostor.server_port}"
    result = r1local("run", "served-only-name", PROMPT, home=tmp_path, R1LOCAL_URL=url, R1LOCAL_API_KEY=KEY)
    assert Impostor.heard and not _leaked(Impostor.heard), Impostor.heard
    assert f"The program answering at {url} is not your r1local serve" in result.stderr
    assert result.returncode == 3 and "Traceback" not in result.stderr  # then in-process: no such model here
    listed = r1local("ps", home=tmp_path, R1LOCAL_HOST=url, R1LOCAL_API_KEY=KEY)
    assert listed.returncode == 2 and "not your r1local serve" in listed.stderr and not _leaked(Impostor.heard)


def test_a_record_whose_port_was_taken_over_is_not_trusted(impostor, tmp_path):
    """The real server died; its record is still there and its pid lives on; something else holds the port."""
    me = psutil.Process()
    url = f"http://127.0.0.1:{impostor.server_port}"
    (tmp_path / "serve.pid").write_text(
        json.dumps({"pid": me.pid, "started": me.create_time(), "uid": os.getuid(), "url": url})
    )
    result = r1local("run", "served-only-name", PROMPT, home=tmp_path, R1LOCAL_API_KEY=KEY)
    assert Impostor.heard and not _leaked(Impostor.heard) and "is not your r1local serve" in result.stderr


def _lan_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing address
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_a_server_on_another_machine_named_by_r1local_host_is_trusted(tmp_path):
    """It cannot share this PC's secret: naming it in R1LOCAL_HOST is the user's choice (docs/security.md)."""
    address = _lan_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    Impostor.heard = []
    server = ThreadingHTTPServer((address, 0), Impostor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r1local(
            "run",
            "remote-name",
            PROMPT,
            home=tmp_path,
            R1LOCAL_HOST=f"{address}:{server.server_port}",
            R1LOCAL_API_KEY=KEY,
        )
    finally:
        server.shutdown()
    assert any(
        method == "POST" and headers.get("Authorization") == f"Bearer {KEY}" for method, _, headers, _ in Impostor.heard
    )


def test_the_proof_binds_the_challenge_the_pid_and_the_port(tmp_path, monkeypatch):
    monkeypatch.setenv("R1LOCAL_HOME", str(tmp_path))
    secret = trust.server_secret()
    assert secret and stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert trust.server_secret() == secret  # created once
    good = trust.proof(secret, "abc", 42, 11435)
    assert (
        len(
            {
                good,
                trust.proof(secret, "abd", 42, 11435),
                trust.proof(secret, "abc", 43, 11435),
                trust.proof(secret, "abc", 42, 11436),
                trust.proof(b"other", "abc", 42, 11435),
            }
        )
        == 5
    )
    assert trust.answer(secret, "not hex!", 11435) is None and trust.answer(secret, "x" * 200, 11435) is None
    (tmp_path / "secret").chmod(0o644)  # readable by others: no longer a secret
    assert trust.read_secret() is None


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_detached_server_on_another_port_is_found_by_every_command(tiny_model, tmp_path):
    home = tmp_path / "home"  # does not exist yet: serve creates it, for this user only
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = r1local(
        "serve",
        str(tiny_model),
        "--detach",
        "--port",
        str(port),
        "--ctx",
        "512",
        "--threads",
        "1",
        "--parallel",
        "1",
        home=home,
    )
    assert started.returncode == 0, started.stderr
    record = json.loads((home / "serve.pid").read_text())
    try:
        process = psutil.Process(record["pid"])
        assert record == {"pid": process.pid, "started": process.create_time(), "uid": os.getuid(), "url": url}
        assert (_mode(home), _mode(home / "serve.log"), _mode(home / "serve.pid"), _mode(home / "secret")) == (
            0o700,
            0o600,
            0o600,
            0o600,
        )
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/health").status_code != 200:
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.1)
        note = f"Using r1local serve at {url} (pid {process.pid}"
        listed = r1local("ps", home=home)
        assert listed.returncode == 0 and tiny_model.stem in listed.stdout and note in listed.stderr, listed.stderr
        answered = r1local("run", tiny_model.stem, "hello", "--json", *FAST, home=home)
        assert answered.returncode == 20 and note in answered.stderr, answered.stderr
        assert json.loads(answered.stdout)["engine"] == "r1local serve"
        shown = r1local("show", tiny_model.stem, "--json", home=home)
        assert shown.returncode == 0 and json.loads(shown.stdout)["served_by"] == url and note in shown.stderr
        embedded = r1local("embed", tiny_model.stem, "a text", home=home)
        assert embedded.returncode == 0 and len(json.loads(embedded.stdout)) > 8 and note in embedded.stderr
        unloaded = r1local("stop", tiny_model.stem, home=home)
        assert unloaded.returncode == 0 and f"Unloaded {tiny_model.stem}." in unloaded.stdout
        stopped = r1local("stop", home=home)
        assert stopped.returncode == 0 and f"pid {process.pid}" in stopped.stdout
        assert not process.is_running() and not (home / "serve.pid").exists()
    finally:
        psutil.Process(record["pid"]).kill() if psutil.pid_exists(record["pid"]) else None


def test_stop_spares_a_program_that_reused_the_recorded_pid(tmp_path):
    """After a crash the pid file stays; the pid now belongs to another program, even one named like a server."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "r1local", "serve"])
    try:
        started = psutil.Process(other.pid).create_time()
        (tmp_path / "serve.pid").write_text(
            json.dumps({"pid": other.pid, "started": started - 3600, "uid": os.getuid(), "url": "http://127.0.0.1:9"})
        )
        result = r1local("stop", home=tmp_path)
        time.sleep(0.3)
        assert other.poll() is None, "stop killed a program that only reused the pid"
        assert result.returncode == 2 and "no longer runs" in result.stderr
        assert not (tmp_path / "serve.pid").exists()
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize(
    "text", ["12345", '{"pid": 12', '["serve"]', '{"pid": "1", "started": 0, "url": "x"}', "\xff\xfe"]
)
def test_a_damaged_record_is_one_line(tmp_path, text):
    (tmp_path / "serve.pid").write_text(text, encoding="latin-1")
    result = r1local("stop", home=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'serve.pid'} is unreadable" in result.stderr and len(result.stderr.splitlines()) == 2


def test_two_detached_servers_at_once_only_the_one_whose_child_serves_succeeds(tmp_path):
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if k not in ("R1LOCAL_HOST", "R1LOCAL_URL")}
    env = {**clean, "R1LOCAL_HOME": str(tmp_path), "COLUMNS": "200"}
    command = [sys.executable, "-m", "r1local", "serve", "--port", str(port), "--detach"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = [(p.wait(timeout=90), *p.communicate()) for p in (first, second)]
    try:
        assert [code == 0 for code, _, _ in results].count(True) == 1, results
        (winner,) = [out for code, out, _ in results if code == 0]
        (loser,) = [err for code, _, err in results if code != 0]
        record = json.loads((tmp_path / "serve.pid").read_text())
        assert f"pid {record['pid']}" in winner and trust.probe(f"http://127.0.0.1:{port}").answers
        assert "already" in loser or "did not start" in loser
    finally:
        r1local("stop", home=tmp_path)


def test_a_log_left_readable_by_others_is_tightened_when_written(tmp_path):
    from r1local import config

    log = tmp_path / "serve.log"
    log.write_text("from an older version\n")
    log.chmod(0o644)
    with config.open_private(log) as file:
        file.write(b"more\n")
    assert _mode(log) == 0o600 and log.read_text() == "from an older version\nmore\n"
