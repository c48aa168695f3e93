"""run / chat / inspect as a user meets them: CliRunner for speed, a subprocess for the real streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from r1local.cli import app

runner = CliRunner()
FAST = ["--max-tokens", "12", "--ctx", "512", "--temperature", "0", "--threads", "1"]


def r1local(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "r1local", *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, tiny_model) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    data = tiny_model.read_bytes()
    not_gguf = root / "notes.gguf"
    not_gguf.write_text("this is not a model\n")
    truncated = root / "truncated.gguf"
    truncated.write_bytes(data[: len(data) // 2])
    # Same length architecture name, so the header stays valid but llama.cpp knows no "qwen9".
    i = data.index(b"general.architecture")
    j = data.index(b"qwen2", i)
    alien = root / "alien.gguf"
    alien.write_bytes(data[:j] + b"qwen9" + data[j + 5 :])
    return {"not_gguf": not_gguf, "truncated": truncated, "alien": alien}


def test_run_json_has_reasoning_content_usage_timings(tiny_model):
    result = runner.invoke(app, ["run", str(tiny_model), "hello", "--json", *FAST])
    assert result.exit_code == 20, result.output  # stopped by --max-tokens
    data = json.loads(result.stdout)
    assert set(data) == {"reasoning", "content", "finish_reason", "usage", "timings", "engine", "device"}
    assert (data["engine"], data["device"]) == ("llama.cpp", "CPU")
    assert data["reasoning"]  # the R1 template opens <think>: random text lands in reasoning
    assert data["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 12
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + 12
    assert data["timings"]["ttft_s"] > 0 and data["timings"]["generation_tokens_per_s"] > 0


def test_subprocess_answer_on_stdout_reasoning_on_stderr(tiny_model):
    thinking = r1local("run", str(tiny_model), "hello", *FAST)
    assert thinking.returncode == 20, thinking.stderr  # 12 tokens of reasoning, no answer yet
    assert thinking.stdout.strip() == ""
    assert thinking.stderr.startswith("Thinking...") and len(thinking.stderr.splitlines()) > 1
    direct = r1local("run", str(tiny_model), "hello", "--no-think", *FAST)
    assert direct.returncode == 20, direct.stderr
    assert len(direct.stdout.strip()) > 0
    hidden = r1local("run", str(tiny_model), "hello", "--hide-think", *FAST)
    assert "Thinking" not in hidden.stderr  # no terminal: no indicator either
    assert hidden.stderr.strip().splitlines() == [thinking.stderr.strip().splitlines()[-1]]


def test_prompt_from_stdin(tiny_model):
    piped = r1local("run", str(tiny_model), "--no-think", "--json", *FAST, stdin="hello")
    direct = r1local("run", str(tiny_model), "hello", "--no-think", "--json", *FAST)
    assert piped.returncode == 20, piped.stderr
    assert json.loads(piped.stdout)["content"] == json.loads(direct.stdout)["content"]


@pytest.mark.parametrize(
    "case, code, words",
    [
        ("missing", 3, "No such file"),
        ("not_gguf", 4, "not a GGUF"),
        ("truncated", 4, "incomplete"),
        ("alien", 4, "qwen9"),
    ],
)
def test_bad_model_files_give_one_clear_line(bad_files, tmp_path, case, code, words):
    path = tmp_path / "nothing.gguf" if case == "missing" else bad_files[case]
    result = r1local("run", str(path), "hello", *FAST)
    assert result.returncode == code, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:")


def test_prompt_longer_than_context(tiny_model):
    result = r1local("run", str(tiny_model), "word " * 400, "--ctx", "128", "--max-tokens", "4")
    assert result.returncode == 5
    assert "context" in result.stderr and "Traceback" not in result.stderr


def test_debug_variable_shows_the_traceback(tmp_path):
    result = r1local("run", str(tmp_path / "none.gguf"), "hi", env={"R1LOCAL_DEBUG": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_empty_prompt_is_a_usage_error(tiny_model):
    result = r1local("run", str(tiny_model), "   ")
    assert result.returncode == 2 and "empty" in result.stderr


def test_chat_reads_lines_from_a_pipe(tiny_model):
    session = "hello\n/set think off\nsecond question\n/show\n/clear\n/bogus\n/bye\nnever read\n"
    result = r1local("chat", str(tiny_model), *FAST, stdin=session)
    assert result.returncode == 0, result.stderr
    assert "think off." in result.stderr
    # the first turn only reasoned (12 tokens) and is dropped, with a word on it; the second stays
    assert "the reasoning used every token before an answer" in result.stderr
    assert "messages     2" in result.stdout
    assert "Conversation cleared." in result.stderr
    assert "Unknown command '/bogus'" in result.stderr
    assert ">>> " not in result.stdout  # no prompts into a pipe


def test_inspect_json(tiny_model):
    result = runner.invoke(app, ["inspect", str(tiny_model), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["architecture"] == "qwen2"
    assert facts["chat_template"] is True
    assert facts["vocab_size"] > 150_000
    assert facts["file_size"] == tiny_model.stat().st_size
    assert facts["tokenizer"] == "gpt2"


def test_inspect_table_and_bad_file(tiny_model, bad_files):
    table = runner.invoke(app, ["inspect", str(tiny_model)])
    assert table.exit_code == 0 and "qwen2" in table.stdout
    bad = runner.invoke(app, ["inspect", str(bad_files["not_gguf"])])
    assert bad.exit_code == 4
