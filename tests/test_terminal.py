"""What reaches the terminal: model text without control sequences (answer and reasoning, run and
chat, `--raw` to keep them), prose wrapped between words at any width."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pexpect
import pytest

from r1local import trust
from r1local.cli.terminal import ControlFilter, WordWrap, json_text, strip_controls

# each thing a hostile text can make a terminal do, between visible words
HOSTILE = (
    "A \x1b]0;window title\x07B \x1b]52;c;cm0gLXJmIH4=\x07C \x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\"
    " D\x1b[2J\x1b[HE\x9b31mF\x9d0;c1 title\x9cG\x07\x08\rH\x1bcI\tJ\x7fK\n"
)
VISIBLE = "A B C click DEFGHI\tJK\n"
CONTROLS = set(map(chr, [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]))


def test_every_control_sequence_is_removed_whole_wherever_the_stream_splits_it():
    assert strip_controls(HOSTILE) == VISIBLE
    for size in range(1, 12):
        stream = ControlFilter()
        pieces = [stream.feed(HOSTILE[i : i + size]) for i in range(0, len(HOSTILE), size)]
        assert "".join(pieces) + stream.end() == VISIBLE, size
    unfinished = ControlFilter()  # a sequence that never ends does not swallow what follows for ever
    shown = unfinished.feed("\x1b]0;" + "x" * 5000) + unfinished.end()
    assert shown and not CONTROLS & set(shown)


def test_json_output_escapes_c1_as_well():
    text = json_text({"content": "a\x9b31m\x1b[2Jb"})
    assert not CONTROLS & set(text.replace("\n", "")) and json.loads(text) == {"content": "a\x9b31m\x1b[2Jb"}


def _wrapped(text: str, width: int, size: int) -> str:
    wrap = WordWrap(width)
    return "".join(wrap.feed(text[i : i + size]) for i in range(0, len(text), size)) + wrap.end()


@pytest.mark.parametrize("width", [20, 37, 80])
def test_prose_wraps_between_words_and_a_url_stays_whole(width):
    url = "http://127.0.0.1:18600/a/rather/long/path/to/the/chat/page/" + "x" * width
    prose = (
        "Ctrl-D or /bye to leave. The chat page is at " + url + " and words are never broken, "
        "whatever the width of the terminal.\nA new paragraph starts on its own line."
    )
    for size in (1, 3, 7, 1000):
        shown = _wrapped(prose, width, size)
        assert shown.split() == prose.split()  # the same words, none cut
        assert url in shown.splitlines()
        assert all(len(line) <= width for line in shown.splitlines() if line != url)
        assert "\nA new paragraph" in shown


class HostileModel(BaseHTTPRequestHandler):
    """This user's own server (it proves it knows the secret) relaying a model whose text is hostile."""

    secret = b""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # /health
        challenge = self.headers[trust.CHALLENGE_HEADER]
        proof = trust.proof(self.secret, challenge, os.getpid(), self.server.server_port)
        self._send("application/json", json.dumps({"status": "ok"}), {trust.PROOF_HEADER: proof})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/show":
            return self._send("application/json", json.dumps({"model_info": {}}))
        deltas = [{"reasoning_content": HOSTILE[i : i + 4]} for i in range(0, len(HOSTILE), 4)]
        deltas += [{"content": HOSTILE[i : i + 4]} for i in range(0, len(HOSTILE), 4)]
        chunks = [{"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        chunks.append(
            {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "model": body["model"],
                "usage": {"prompt_tokens": 3, "completion_tokens": len(chunks)},
            }
        )
        self._send("text/event-stream", "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n")

    def _send(self, kind: str, text: str, headers: dict | None = None) -> None:
        self.send_response(200)
        for name, value in {"Content-Type": kind, "Content-Length": str(len(text.encode())), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(text.encode())


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("R1LOCAL_HOME", str(home))
        HostileModel.secret = trust.server_secret()
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", home
    server.shutdown()


def r1local(*args: str, front, stdin: str | None = None) -> subprocess.CompletedProcess:
    url, home = front
    return subprocess.run(
        [sys.executable, "-m", "r1local", *args],
        capture_output=True,
        timeout=120,
        input=stdin.encode() if stdin is not None else None,
        stdin=subprocess.DEVNULL if stdin is None else None,
        env={**os.environ, "R1LOCAL_HOST": url, "R1LOCAL_HOME": str(home), "COLUMNS": "200"},
    )


@pytest.mark.parametrize("command", [["run", "evil/m", "hi"], ["chat", "evil/m"]])
def test_model_text_reaches_the_terminal_without_controls(front, command):
    stdin = "hi\n" if command[0] == "chat" else None
    result = r1local(*command, front=front, stdin=stdin)
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, err
    assert VISIBLE.strip() in out and not CONTROLS & set(out.replace("\n", ""))
    assert "A B C click" in err and not CONTROLS & set(err.replace("\n", ""))  # the reasoning too
    raw = r1local(*command, "--raw", front=front, stdin=stdin)
    assert HOSTILE.strip().encode() in raw.stdout and b"\x1b]52;c;" in raw.stderr


def _screen(*args: str, columns: int = 80, home=None, expect: str | None = None) -> str:
    """What a command writes to an 80-column pseudo-terminal, escape sequences aside."""
    env = {**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1", **({"R1LOCAL_HOME": str(home)} if home else {})}
    env.pop("COLUMNS", None)
    child = pexpect.spawn(
        sys.executable, ["-m", "r1local", *args], env=env, encoding="utf-8", timeout=120, dimensions=(40, columns)
    )
    if expect is not None:
        child.expect_exact(expect)
        shown = child.before + expect
        child.close(force=True)
    else:
        child.expect(pexpect.EOF)
        shown = child.before
    lines = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown).split("\r\n")
    return "\n".join(line.rpartition("\r")[2] for line in lines)  # a spinner redraws its line after \r


def _unbroken(shown: str, columns: int, words: list[str]) -> None:
    for line in shown.splitlines():
        assert len(line) <= columns or " " not in line.strip(), line  # too long only when one word is
    for word in words:
        assert word in shown.split(), (word, shown)


def test_prose_on_an_80_column_terminal_breaks_no_word(tiny_model, tmp_path):
    port = free_port()
    banner = _screen("serve", "--port", str(port), "--no-ui", home=tmp_path, expect="/api")
    _unbroken(banner, 80, [f"http://127.0.0.1:{port}"])
    served = _screen("serve", "--port", str(port), home=tmp_path, expect=f"{port}/)")
    _unbroken(served, 80, [f"http://127.0.0.1:{port}/)"])
    intro = _screen("chat", str(tiny_model), "--ctx", "512", "--threads", "1", home=tmp_path, expect="leave.")
    _unbroken(intro, 80, [str(tiny_model), "leave."])
    hw = _screen("hw", home=tmp_path)
    _unbroken(hw, 80, ["Why:"])
    why = next(i for i, line in enumerate(hw.splitlines()) if "Why:" in line)
    assert all(line.startswith("  ") for line in hw.splitlines()[why:] if line.strip())  # the indent is kept


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_help_names_values_in_words_and_lists_everyday_commands_first():
    shown = _screen("-h", columns=100)
    commands = [line.split()[0] for line in shown.split("Commands:")[1].splitlines() if line.strip()]
    assert commands[:4] == ["run", "chat", "pull", "list"] and commands.index("accelerate") > commands.index("hw")
    run = _screen("run", "-h", columns=100)
    assert "r1local run [OPTIONS] MODEL [PROMPT]\n" in run
    assert "--temperature NUMBER" in run and "--rpc HOST:PORT,..." in run and "\n  MODEL " in run
    assert not re.search(r"<(str|int|float)|range>|\{model\}", run)
    serve = _screen("serve", "-h", columns=80)
    assert "serve [OPTIONS] [MODEL...]" in serve and "--api-key-file" in serve.split()
    for shown in (serve, _screen("run", "-h", columns=80)):
        assert not re.search(r"[A-Za-z0-9]-\n", shown)  # click broke --api-key-file and --max-tokens at hyphens


def test_serve_says_what_it_does_with_more_models_than_max_loaded(tiny_model, tiny_model_b, tmp_path):
    command = [
        sys.executable,
        "-m",
        "r1local",
        "serve",
        str(tiny_model),
        str(tiny_model_b),
        "--port",
        str(free_port()),
        "--ctx",
        "512",
        "--threads",
        "1",
        "--parallel",
        "1",
    ]
    server = subprocess.Popen(
        command,
        env={**os.environ, "R1LOCAL_HOME": str(tmp_path), "COLUMNS": "300"},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = []
        while not lines or "r1local API on" not in lines[-1]:
            lines.append(server.stderr.readline())
            assert lines[-1], "".join(lines)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (
        f"2 models given and --max-loaded 1: all are served, but only {tiny_model_b.stem} stays in memory"
        in "".join(lines)
    ), lines
