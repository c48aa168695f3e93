"""`chat` driven as a person drives it, through a pseudo-terminal: line editing and history, slash
commands, \"\"\" blocks and bracketed paste as one message, Ctrl-C that never ends the conversation."""

from __future__ import annotations

import json
import os
import re
import sys
import time

import pytest

pexpect = pytest.importorskip("pexpect")

PROMPT = ">>>"  # prompt_toolkit draws the space after it as a cursor move
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
UP, CTRL_C, CTRL_D = "\x1b[A", "\x03", "\x04"


@pytest.fixture
def chat(tiny_model, tmp_path):
    env = {
        **os.environ,
        "R1LOCAL_HOME": str(tmp_path / "home"),
        "R1LOCAL_URL": "http://127.0.0.1:9",
        "TERM": "xterm",
        "COLUMNS": "100",
        "PROMPT_TOOLKIT_NO_CPR": "1",
    }
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "r1local",
            "chat",
            str(tiny_model),
            "--no-think",
            "--temperature",
            "0",
            "--max-tokens",
            "8",
            "--ctx",
            "4096",
            "--threads",
            "1",
        ],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 100),
    )
    child.expect("/help for commands")
    child.expect_exact(PROMPT)
    yield child
    child.close(force=True)


def ask(child, line: str, expect: str) -> str:
    """Send a line, wait for `expect` (a regex) in what it prints, then for the next prompt
    (prompt_toolkit redraws the prompt while a line is typed, so the prompt alone marks nothing)."""
    child.send(line + "\r")
    child.expect(expect)
    found = child.match.group(0)
    child.expect_exact(PROMPT)
    return found


def messages(child) -> int:
    return int(ask(child, "/show", r"messages +(\d+)").split()[-1])


def test_commands_settings_and_history(chat, tmp_path):
    ask(chat, "/help", "/set temperature 0.6")
    ask(chat, "/set temperature 0.3", "temperature = 0.3")
    ask(chat, "/show", "temperature +0.3")
    chat.send(UP)  # the line editor recalls the last line
    ask(chat, "", "temperature +0.3")
    ask(chat, "/set temperature -1", "greater than or equal to 0")
    ask(chat, "/bogus", "Unknown command '/bogus'")

    ask(chat, "hello", r"\(cut at max_tokens")
    assert messages(chat) == 2

    saved = tmp_path / "conversation.json"
    ask(chat, f"/save {saved}", "Saved 2 messages")
    assert [m["role"] for m in json.loads(saved.read_text())["messages"]] == ["user", "assistant"]
    ask(chat, "/clear", "Conversation cleared.")
    assert messages(chat) == 0
    ask(chat, f"/load {saved}", "Loaded 2 messages")
    assert messages(chat) == 2

    chat.send(CTRL_D)
    chat.expect(pexpect.EOF)
    chat.wait()
    assert chat.exitstatus == 0
    assert "hello" in (tmp_path / "home" / "chat_history").read_text()


def test_multi_line_messages_are_one_turn(chat):
    chat.send('"""\r')
    chat.expect_exact("...")
    chat.send("first line\r")
    chat.expect_exact("...")
    ask(chat, 'second line"""', r"\(cut at max_tokens")
    assert messages(chat) == 2
    ask(chat, f"{PASTE_START}pasted one\npasted two\npasted three{PASTE_END}", r"\(cut at max_tokens")
    assert messages(chat) == 4  # three pasted lines, one message


def test_ctrl_c_clears_the_line_or_stops_the_answer_and_the_conversation_stays(chat):
    ask(chat, "hello", r"\(cut at max_tokens")
    chat.send("half typed")
    chat.send(CTRL_C)
    chat.expect("cleared; Ctrl-D or /bye leaves")
    chat.expect_exact(PROMPT)
    chat.send(CTRL_C)  # twice in a row: still here
    chat.expect("cleared; Ctrl-D or /bye leaves")
    chat.expect_exact(PROMPT)
    assert messages(chat) == 2

    ask(chat, "/set max_tokens off", "max_tokens = None")
    chat.send("tell me everything\r")
    time.sleep(1.5)  # the answer is streaming (thousands of tokens of room)
    chat.send(CTRL_C)
    ask(chat, "", r"\(stopped")
    assert messages(chat) in (3, 4)  # the answer so far stays when it has text
    chat.send("/bye\r")
    chat.expect(pexpect.EOF)


def test_thinking_indicator(tiny_model, tmp_path):
    env = {
        **os.environ,
        "R1LOCAL_HOME": str(tmp_path),
        "R1LOCAL_URL": "http://127.0.0.1:9",
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",
    }
    for flags, shown in ((["--hide-think"], False), ([], True)):
        child = pexpect.spawn(
            sys.executable,
            [
                "-m",
                "r1local",
                "chat",
                str(tiny_model),
                *flags,
                "--temperature",
                "0",
                "--max-tokens",
                "30",
                "--ctx",
                "512",
                "--threads",
                "1",
            ],
            env=env,
            encoding="utf-8",
            timeout=60,
            dimensions=(40, 100),
        )
        child.expect_exact(PROMPT)
        child.send("hello\r")
        child.expect(r"Thought for \d+ s \(\d+ tokens\)\.")
        while_thinking = child.before
        child.expect_exact(PROMPT)
        # hidden: a live "Thinking... N s, N tokens" line; shown: a header, then the reasoning itself
        live = re.search(r"Thinking\.\.\. \d+ s, \d+ tokens", while_thinking)
        assert "Thinking..." in while_thinking and bool(live) != shown
        child.sendcontrol("d")
        child.expect(pexpect.EOF)


def test_a_server_error_keeps_the_conversation(plain_model, tmp_path_factory):
    """Through a running server, a model without thinking: it answers as it is; asked to think it
    refuses (400), the error is shown, the failed turn is dropped and the session goes on."""
    from serving import serving

    with serving(tmp_path_factory, plain_model) as url:
        # the server's own R1LOCAL_HOME (serving's), whose secret proves the server is the user's
        env = {**os.environ, "R1LOCAL_HOST": url, "TERM": "xterm", "COLUMNS": "100", "PROMPT_TOOLKIT_NO_CPR": "1"}
        child = pexpect.spawn(
            sys.executable,
            ["-m", "r1local", "chat", plain_model.stem, "--temperature", "0", "--max-tokens", "4"],
            env=env,
            encoding="utf-8",
            timeout=60,
            dimensions=(40, 100),
        )
        try:
            child.expect(f"ready \\({re.escape(url)}\\)")
            child.expect_exact(PROMPT)
            ask(child, "hello", r"\(cut at max_tokens")
            assert messages(child) == 2
            ask(child, "/set think on", "think on")
            ask(child, "hello again", 'error: "tiny-plain" does not support thinking')
            assert messages(child) == 2  # the failed turn is not kept
            ask(child, "/set think off", "think off")
            ask(child, "hello again", r"\(cut at max_tokens")
            assert messages(child) == 4
            child.send("/bye\r")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)


def test_ollama_repl_commands(chat, tmp_path, tiny_model):
    ask(chat, "/set parameter temperature 0.7", "temperature = 0.7")
    ask(chat, "/set parameter num_predict 5", "max_tokens = 5")
    ask(chat, "/set parameter top_k 20", "top_k = 20")
    ask(chat, "/set parameter num_ctx 256", "context_limit = 256")
    ask(chat, "/set parameter stop END STOP", r"stop = \['END', 'STOP'\]")
    ask(chat, "/set parameter num_gpu 10", "start chat again with --gpu-layers")
    ask(chat, "/show", "temperature +0.7")
    ask(chat, "/set nothink", "nothink")
    ask(chat, "/show", "think +off")
    ask(chat, "/set think", "think on")
    ask(chat, "/show", "think +on")
    ask(chat, "/set nothink", "nothink")
    ask(chat, "/set verbose", "verbose on")
    ask(chat, "hello", r"answer: \d+ tokens?, [\d.]+ tokens/s")  # Ollama's --verbose figures, after the answer
    ask(chat, "/set quiet", "quiet")
    chat.send("hello again\r")
    chat.expect(r"\(cut at max_tokens")
    chat.expect_exact(PROMPT)
    assert "tokens/s" not in chat.before
    info = ask(chat, "/show info", r"architecture +qwen2[\s\S]*context length +\d+")
    assert "quantization" in chat.before + info
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}))
    ask(chat, f"/load {one}", "Loaded 1 message from")  # one message, not "1 messages"
