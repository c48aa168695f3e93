"""A network that fails: every Hub request has timeouts and retries, the user sees a line at once,
and a failure is one sentence saying what happened. Against the test hub, an endpoint that accepts
connections and never answers, and one that refuses them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from testhub import BlackHole, Fault, refused_url

from r1local import download, hubcall
from r1local.errors import DownloadError
from r1local.store import Target

REPO = "someone/Model-GGUF"
FILE = "model-Q4_K_M.gguf"
TARGET = Target(REPO, files=(FILE,))


def timed_plan(monkeypatch, endpoint: str, read_timeout: str = "1") -> tuple[list[tuple[float, str]], Exception, float]:
    """download.plan against `endpoint`: every line it says with its time, the error, the total time."""
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("R1LOCAL_HUB_TIMEOUT", read_timeout)
    start = time.monotonic()
    said: list[tuple[float, str]] = []
    with pytest.raises(DownloadError) as caught:
        download.plan(TARGET, notify=lambda line: said.append((time.monotonic() - start, line)))
    return said, caught.value, time.monotonic() - start


def test_a_black_hole_gets_a_line_at_once_retries_and_ends_in_one_sentence(hub, monkeypatch):  # noqa: F811
    with BlackHole() as url:
        said, error, took = timed_plan(monkeypatch, url)
    host = url.removeprefix("http://")
    assert said[0][0] < 2.0 and said[0][1] == f"Contacting {host} for the file list of {REPO} ..."
    assert [line for _, line in said[1:]] == [
        f"{host} sent no answer; trying again in 1 s (try 2 of 3).",
        f"{host} sent no answer; trying again in 3 s (try 3 of 3).",
    ]
    assert error.message == (
        f"{host} accepted the connection but sent no answer for the file list of {REPO} "
        "within 1 s (3 tries); nothing was downloaded."
    )
    assert "resume" not in str(error) and "pull" not in error.hint
    assert 3 + 4 <= took < 20  # three 1 s timeouts and the 1 + 3 s pauses


def test_a_refused_connection_is_retried_then_said(hub, monkeypatch):  # noqa: F811
    url = refused_url()
    said, error, took = timed_plan(monkeypatch, url)
    host = url.removeprefix("http://")
    assert [line for _, line in said] == [
        f"Contacting {host} for the file list of {REPO} ...",
        f"{host} could not be reached; trying again in 1 s (try 2 of 3).",
        f"{host} could not be reached; trying again in 3 s (try 3 of 3).",
    ]
    assert error.message.startswith(f"Could not connect to {host} (3 tries): ")
    assert error.message.endswith("; nothing was downloaded.") and error.hint == hubcall.NEXT_STEP
    assert 4 <= took < 15


def test_the_hub_busy_for_a_moment_is_retried_with_backoff(hub, monkeypatch):  # noqa: F811
    hub.add(REPO, {FILE: b"GGUF" + bytes(1000)})
    hub.info_failures = [503, 429]
    said: list[str] = []
    path = download.pull(TARGET, notify=said.append)
    assert path.read_bytes() == b"GGUF" + bytes(1000)
    host = hub.url.removeprefix("http://")
    assert said == [
        f"Contacting {host} for the file list of {REPO} ...",
        f"{host} answered 503; trying again in 1 s (try 2 of 3).",
        f"{host} answered 429; trying again in 3 s (try 3 of 3).",
    ]


def test_a_missing_repository_is_not_retried(hub, monkeypatch):  # noqa: F811
    said: list[str] = []
    with pytest.raises(Exception, match="was not found on the Hub"):
        download.plan(TARGET, notify=said.append)
    assert len(said) == 1 and len([r for r in hub.requests if r.path.startswith("/api/models/")]) == 1


def test_a_transfer_cut_after_some_bytes_says_it_resumes(hub, monkeypatch):  # noqa: F811
    data = bytes(range(256)) * 64_000  # 16 MB: http_get writes whole 10 MB chunks, so a cut at 12 MB keeps 10
    hub.add(REPO, {FILE: data}).faults[FILE] = Fault(drop_after=12_000_000, then_gone=True)
    monkeypatch.setattr(time, "sleep", lambda s: None)  # http_get's pauses between its own retries
    with pytest.raises(DownloadError) as caught:
        download.pull(TARGET)
    host = hub.url.removeprefix("http://")
    assert caught.value.message.startswith(f"Lost the connection to {host} after 10.0 MiB of {FILE}: ")
    assert caught.value.hint == "Run the same command again: the download resumes where it stopped."


def cli_lines(*args: str, env: dict[str, str], limit: float = 60.0) -> tuple[list[tuple[float, str]], int, float]:
    """Run r1local in a child process: its stderr lines with the time each arrived, and the exit code."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "r1local", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env, "COLUMNS": "200"},
        text=True,
    )
    lines = [(time.monotonic() - start, line.rstrip()) for line in proc.stderr]
    code = proc.wait(timeout=limit)
    return lines, code, time.monotonic() - start


def first_line_budget() -> float:
    """2 s after the command is ready to work: the interpreter's own start-up (imports) measured here."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import r1local.cli"], check=True)
    return time.monotonic() - start + 2.0


@pytest.mark.parametrize("command", [["run", "--yes"]])
def test_run_and_pull_against_a_black_hole_say_what_happened(hub, command):  # noqa: F811
    with BlackHole() as url:
        env = {"HF_ENDPOINT": url, "R1LOCAL_HUB_TIMEOUT": "1"}
        lines, code, took = cli_lines(*command, f"{REPO}/{FILE}", *(["Hi"] if command[0] == "run" else []), env=env)
    text = "\n".join(line for _, line in lines)
    contacting = [t for t, line in lines if line.startswith("Contacting 127.0.0.1:")]
    assert contacting and contacting[0] < first_line_budget(), lines
    assert code == DownloadError.exit_code and took < 60, text
    assert "error: 127.0.0.1" in text and "accepted the connection but sent no answer" in text
    assert "resume" not in text and "pull" not in text.split("error:")[1], text  # `run` is not told to pull


@pytest.mark.slow
def test_a_black_hole_with_the_default_timeouts_ends_within_a_minute(hub, monkeypatch):  # noqa: F811
    monkeypatch.delenv("R1LOCAL_HUB_TIMEOUT", raising=False)
    with BlackHole() as url:
        said, error, took = timed_plan(monkeypatch, url, "10")
    assert said[0][0] < 2.0 and took < 60 and "within 10 s (3 tries)" in error.message
