"""Chat templates render in a child process, bounded in time, memory and output.

A GGUF's chat template is code from whoever made the file. Jinja's sandbox keeps it away from
Python's internals, but not from looping 10^10 times, allocating gigabytes or recursing without
end, and a thread that runs such a loop cannot be stopped. So each model's template renders in a
process of its own (started at its first render, reading one JSON request a line from its stdin):
its address space is capped, its output is counted as it is written, and the parent kills it
when a render takes longer than RENDER_TIMEOUT_S. Every failure is one line for the caller.

Run as `python -m r1local.engine.template_sandbox`: the child. It imports nothing heavy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

RENDER_TIMEOUT_S = 5.0  # a real template renders a long chat in milliseconds
MEMORY_LIMIT_BYTES = 1 << 30  # the child's address space (Python and Jinja take ~40 MB of it)
OUTPUT_SLACK_CHARS = 1 << 20  # a prompt may be this much longer than four times its messages


class TemplateFailure(Exception):
    """The template could not render these messages; `refused` when it said so itself (raise_exception)."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def _raise_exception(message: str):
    raise TemplateFailure(str(message), refused=True)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def environment() -> ImmutableSandboxedEnvironment:
    """Jinja's immutable sandbox, configured as Hugging Face transformers configures it."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def _one_line(text: object, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TemplateProcess:
    """One template's child process; render() is safe to call from several threads (one at a time)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None

    def render(self, variables: dict[str, Any]) -> str:
        """The rendered text, or TemplateFailure with one line saying why."""
        request = json.dumps({"variables": variables}, default=str) + "\n"
        with self._lock:
            child = self._child or self._start()
            assert child.stdin and child.stdout  # both are pipes
            expired = threading.Event()

            def expire() -> None:
                expired.set()
                child.kill()

            timer = threading.Timer(RENDER_TIMEOUT_S, expire)
            timer.start()
            try:
                child.stdin.write(request.encode())
                child.stdin.flush()
                reply = child.stdout.readline()
            except OSError:  # the child is gone (killed, crashed): its reply is empty
                reply = b""
            finally:
                timer.cancel()
            if not reply:
                self._stop()
                if expired.is_set():
                    raise TemplateFailure(f"it ran longer than {RENDER_TIMEOUT_S:g} s")
                raise TemplateFailure("its renderer stopped (out of memory, or it crashed)")
        answer = json.loads(reply)
        if "text" in answer:
            return answer["text"]
        raise TemplateFailure(answer["failed"], refused=answer.get("refused", False))

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self) -> subprocess.Popen[bytes]:
        # Started in the folder that holds this package, so `-m` finds this module and no other.
        child = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=Path(__file__).parents[2],
        )
        assert child.stdin  # a pipe
        child.stdin.write(json.dumps({"source": self.source}).encode() + b"\n")
        child.stdin.flush()
        self._child = child
        return child

    def _stop(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.kill()
            child.wait()
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()


# -- the child --


def _limit_memory() -> None:
    try:
        import resource
    except ImportError:  # Windows: the time bound still holds
        return
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def _render(template: jinja2.Template, variables: dict[str, Any], limit: int) -> dict[str, Any]:
    try:
        parts, size = [], 0
        for part in template.generate(**variables):
            size += len(part)
            if size > limit:
                return {"failed": f"its output passed {limit:,} characters"}
            parts.append(part)
        return {"text": "".join(parts)}
    except TemplateFailure as failure:
        return {"failed": _one_line(failure), "refused": failure.refused}
    except RecursionError:
        return {"failed": "it recursed without end"}
    except MemoryError:
        return {"failed": f"it needed more than {MEMORY_LIMIT_BYTES >> 20} MiB of memory"}
    except Exception as error:  # noqa: BLE001  (any other error of the template's code: jinja's, a TypeError...)
        return {
            "failed": _one_line(
                f"{type(error).__name__}: {error}" if not isinstance(error, jinja2.TemplateError) else error
            )
        }


def main() -> None:
    _limit_memory()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    template = environment().from_string(json.loads(stdin.readline())["source"])
    for line in stdin:
        variables = json.loads(line)["variables"]
        reply = _render(template, variables, 4 * len(line) + OUTPUT_SLACK_CHARS)
        stdout.write(json.dumps(reply).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    main()
