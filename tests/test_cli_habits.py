"""The habits Ollama and LM Studio users bring: --version, -h, ls, help that describes every flag
with an example per command, exit codes that tell what happened, Ctrl-C = 130, a prompt plus piped
stdin, a busy port in one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import typer
from typer.testing import CliRunner

from r1local import __version__, errors
from r1local.cli import app
from r1local.cli.models import _ago

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
FAST = ["--ctx", "512", "--temperature", "0", "--threads", "1"]


def r1local(*args: str, stdin: str | None = None, **popen) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "r1local", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "80"},
        **popen,
    )


def commands() -> dict[str, click.Command]:
    return typer.main.get_command(app).commands


def test_version_short_help_and_aliases(tiny_model, tmp_path, monkeypatch):
    assert runner.invoke(app, ["--version"]).stdout.strip() == f"r1local {__version__}"
    short = runner.invoke(app, ["run", "-h"])
    assert short.exit_code == 0 and "--max-tokens" in short.stdout
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert runner.invoke(app, ["ls"]).output == runner.invoke(app, ["list"]).output != ""
    shown = runner.invoke(app, ["show", str(tiny_model), "--json"])
    assert shown.exit_code == 0 and shown.stdout == runner.invoke(app, ["inspect", str(tiny_model), "--json"]).stdout


def test_every_command_and_flag_is_described_with_an_example():
    aliases = {"ls", "inspect"}
    for name, command in commands().items():
        assert command.help and command.help.strip(), name
        if name not in aliases:
            example = command.help.split("Example:")[1]
            assert "r1local " + name in example, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts}"
        text = runner.invoke(app, [name, "--help"], terminal_width=100).stdout
        assert "BOOLEAN" not in text and "<bool>" not in text.lower(), name


def test_exit_codes_are_documented():
    codes = {cls.exit_code for cls in _subclasses(errors.R1Error)} | {
        0,
        errors.MAX_TOKENS_EXIT,
        errors.INTERRUPTED_EXIT,
    }
    text = " ".join(runner.invoke(app, ["run", "--help"], terminal_width=300).stdout.split())
    for code in codes:
        assert f" {code} " in text, code


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_reasoning_that_uses_every_token_says_so_and_exits_10(tiny_model):
    result = r1local("run", str(tiny_model), "hello", "--max-tokens", "8", *FAST)
    assert result.returncode == errors.MAX_TOKENS_EXIT
    assert result.stdout.strip() == ""
    last = result.stderr.strip().splitlines()[-1]
    assert "reasoning used all 8 tokens of --max-tokens" in last and "Raise --max-tokens" in last
    cut = r1local("run", str(tiny_model), "hello", "--no-think", "--max-tokens", "8", *FAST)
    assert cut.returncode == errors.MAX_TOKENS_EXIT and cut.stdout.strip()
    assert "answer was cut at --max-tokens 8" in cut.stderr


def test_prompt_argument_and_piped_stdin_are_joined_as_ollama_does(tiny_model):
    both = r1local(
        "run",
        str(tiny_model),
        "Summarise:",
        "--no-think",
        "--json",
        "--max-tokens",
        "4",
        *FAST,
        stdin="a long document\n",
    )
    joined = r1local(
        "run", str(tiny_model), "Summarise:\n\na long document\n", "--no-think", "--json", "--max-tokens", "4", *FAST
    )
    alone = r1local("run", str(tiny_model), "Summarise:", "--no-think", "--json", "--max-tokens", "4", *FAST)
    first, second, third = (json.loads(r.stdout) for r in (both, joined, alone))
    assert first["usage"]["prompt_tokens"] == second["usage"]["prompt_tokens"] > third["usage"]["prompt_tokens"]
    assert first["content"] == second["content"]


def test_ctrl_c_stops_the_answer_and_exits_130(tiny_model):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "r1local",
            "run",
            str(tiny_model),
            "hello",
            "--no-think",
            "--max-tokens",
            "100000",
            "--ctx",
            "4096",
            "--threads",
            "1",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.read(1)  # the answer is streaming
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == errors.INTERRUPTED_EXIT
    assert "(interrupted)" in stderr and "Traceback" not in stderr


def test_ctrl_c_while_loading_exits_130_without_a_traceback(tiny_model, monkeypatch):
    from r1local.engine.model import Model

    def interrupted_load(*args, **kwargs):
        raise KeyboardInterrupt  # what SIGINT raises in the middle of a load

    monkeypatch.setattr(Model, "load", interrupted_load)
    result = runner.invoke(app, ["run", str(tiny_model), "hi", *FAST])
    assert result.exit_code == errors.INTERRUPTED_EXIT
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_busy_port_is_one_line_with_the_port_hint():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        result = r1local("serve", "--port", str(port))
    finally:
        holder.close()
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: Port {port} on 127.0.0.1 is already in use (another r1local serve?); "
        f"stop that program or pick another port with --port {port + 1}."
    )


def test_list_says_one_minute_not_one_minutes():
    now = time.time()
    assert _ago(now - 61) == "1 minute ago"
    assert _ago(now - 3 * 3600) == "3 hours ago"
    assert _ago(now - 86400 - 5) == "1 day ago"
    assert _ago(now - 5) == "just now"


def test_models_and_hw_fit_80_columns_with_names_whole():
    from r1local import catalog

    table = r1local("models")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    distills = catalog.load().distills
    for d in distills:  # each short name, and the quantisation it picks here, whole on one line
        row = next(line for line in lines if line.startswith(f"r1:{d.name} "))
        assert row.split()[1].startswith(f"r1:{d.name}-")
    wide = r1local("models", "--all").stdout
    assert all(v.name in wide for v in catalog.load().variants())

    for snapshot in sorted((ROOT / "tests" / "snapshots").glob("*.json")):
        advice = json.loads(r1local("hw", "--snapshot", str(snapshot), "--json").stdout)["recommendation"]
        report = r1local("hw", "--snapshot", str(snapshot)).stdout.splitlines()
        if advice is not None:  # the command to type stands whole on a line of its own
            assert f"  r1local pull {advice['model']}" in report, snapshot
