"""One decoder of OpenAI-compatible streams (server-sent events of chat or text completion chunks)
into the engine's events, shared by the CLI's client of a resident server and the upstream engine.

Reasoning may arrive in `reasoning_content`, in `reasoning` or as a `<think>` block inside the
content; all of it leaves as ReasoningDelta. Every byte is another program's: a chunk that is not
what the API defines (not an object, a delta that is not an object, text that is not a string,
usage that is not counts) ends the stream with one clear error instead of an exception in the
thread that reads it.
"""

from __future__ import annotations

import json
from typing import Any

from .events import Event, ReasoningDelta
from .reasoning import ReasoningSplitter

REASONING_FIELDS = ("reasoning_content", "reasoning")
MAX_SHOWN = 120  # characters of a malformed chunk quoted in the error


class MalformedStream(ValueError):
    """A chunk the API does not define; the message says which and how."""


class StreamDecoder:
    """feed() each line of the response body, then flush(); both return events. After an error
    chunk or a malformed one, `error` is set and the caller stops reading."""

    def __init__(self, *, chat: bool = True) -> None:
        self.chat = chat  # chat completion chunks (delta) or text completion chunks (text)
        self.usage: dict[str, int] | None = None
        self.finish: str | None = None
        self.error: str | None = None
        self.done = False  # [DONE] seen
        self._splitter = ReasoningSplitter(in_reasoning=False)  # a <think> block inside the content

    def feed(self, line: str) -> list[Event]:
        if not line.startswith("data:") or self.error or self.done:
            return []
        payload = line[5:].strip()
        if payload == "[DONE]":
            self.done = True
            return []
        try:
            return self._chunk(payload)
        except MalformedStream as malformed:
            self.error = f"a malformed stream chunk ({malformed}): {_shown(payload)}"
            return []

    def flush(self) -> list[Event]:
        return [*self._splitter.flush()]

    @property
    def prompt_tokens(self) -> int:
        return (self.usage or {}).get("prompt_tokens", 0)

    @property
    def completion_tokens(self) -> int | None:
        return (self.usage or {}).get("completion_tokens")

    @property
    def cached_tokens(self) -> int:
        return (self.usage or {}).get("cached_tokens", 0)

    def _chunk(self, payload: str) -> list[Event]:
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise MalformedStream("not JSON") from None
        if not isinstance(chunk, dict):
            raise MalformedStream("not an object")
        if "error" in chunk:
            self.error = error_message(chunk)
            return []
        if chunk.get("usage") is not None:
            self.usage = _usage(chunk["usage"])
        choices = chunk.get("choices")
        if not isinstance(choices, list):  # every chunk has them, an empty list beside the usage
            raise MalformedStream("no list of choices")
        events: list[Event] = []
        for choice in choices:
            if not isinstance(choice, dict):
                raise MalformedStream("a choice is not an object")
            events += self._choice(choice)
            finish = choice.get("finish_reason")
            if finish is not None and not isinstance(finish, str):
                raise MalformedStream("finish_reason is not a string")
            self.finish = finish or self.finish
        return events

    def _choice(self, choice: dict) -> list[Event]:
        if not self.chat:
            return [*self._splitter.feed(_text(choice, "text"))]
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise MalformedStream("delta is not an object")
        reasoning = next((_text(delta, key) for key in REASONING_FIELDS if delta.get(key)), "")
        events: list[Event] = [ReasoningDelta(reasoning)] if reasoning else []
        return events + self._splitter.feed(_text(delta, "content"))


def _text(obj: dict, key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedStream(f"{key} is not a string")
    return value


def _usage(usage: Any) -> dict[str, int]:
    """The counts of a usage object (cached tokens from prompt_tokens_details)."""
    if not isinstance(usage, dict):
        raise MalformedStream("usage is not an object")
    details = usage.get("prompt_tokens_details") or {}
    counts = {
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "cached_tokens": details.get("cached_tokens") if isinstance(details, dict) else None,
    }
    for key, value in counts.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise MalformedStream(f"usage's {key} is not a count")
    return {key: value for key, value in counts.items() if value is not None}


def error_message(body: Any) -> str:
    """The message inside an OpenAI or Ollama error body, else the body itself (shortened)."""
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else error
    return str(message if message is not None else error)[:500] or "no message"


def error_text(text: str) -> str:
    """error_message of a body given as text (a non-JSON one is quoted as it is)."""
    try:
        return error_message(json.loads(text))
    except ValueError:
        return text.strip()[:500] or "no message"


def _shown(payload: str) -> str:
    return payload if len(payload) <= MAX_SHOWN else payload[:MAX_SHOWN] + "..."
