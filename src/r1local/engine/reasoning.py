"""Streaming split of a model's `<think>...</think>` reasoning from its answer.

Text arrives in arbitrary chunks (a tag may be cut anywhere), so the splitter holds back the
shortest tail that could still become a tag, and the whitespace that might turn out to sit next to
one: reasoning is reported without the newlines around it and the answer without the blank lines
that follow `</think>`.
"""

from __future__ import annotations

from .events import ContentDelta, ReasoningDelta

OPEN, CLOSE = "<think>", "</think>"

_START, _REASONING, _CONTENT = "start", "reasoning", "content"


def partial_tag_len(text: str, tag: str) -> int:
    """Length of the longest tail of `text` that is a proper prefix of `tag`."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


class ReasoningSplitter:
    """feed() chunks of generated text, then flush(); both return ReasoningDelta/ContentDelta events.

    in_reasoning: the rendered prompt already opened `<think>` (R1 with thinking on), so output
    starts inside the reasoning. Otherwise a `<think>` at the very start of the output (after
    optional whitespace) opens it; output without one is all answer. Reasoning never closed by
    `</think>` (cut by max_tokens) stays reasoning and the answer is empty.
    """

    def __init__(self, in_reasoning: bool):
        self._state = _REASONING if in_reasoning else _START
        self._buf = ""  # text received but not yet emitted
        self._at_section_start = True  # leading whitespace of a section is dropped

    @property
    def in_reasoning(self) -> bool:
        return self._state == _REASONING

    def feed(self, text: str) -> list[ReasoningDelta | ContentDelta]:
        self._buf += text
        return self._drain(final=False)

    def flush(self) -> list[ReasoningDelta | ContentDelta]:
        return self._drain(final=True)

    def _drain(self, final: bool) -> list[ReasoningDelta | ContentDelta]:
        events: list[ReasoningDelta | ContentDelta] = []
        while True:
            if self._at_section_start:
                self._buf = self._buf.lstrip()
                if not self._buf and not final:
                    return events
            if self._state == _START:
                if self._buf.startswith(OPEN):
                    self._buf = self._buf[len(OPEN) :]
                    self._state = _REASONING
                    continue
                if not final and OPEN.startswith(self._buf):
                    return events  # could still become "<think>"
                self._state = _CONTENT
            if self._state == _CONTENT:
                self._at_section_start = self._at_section_start and not self._buf
                _emit(events, ContentDelta, self._buf)
                self._buf = ""
                return events
            # reasoning
            self._at_section_start = False
            end = self._buf.find(CLOSE)
            if end >= 0:
                _emit(events, ReasoningDelta, self._buf[:end].rstrip())
                self._buf = self._buf[end + len(CLOSE) :]
                self._state = _CONTENT
                self._at_section_start = True
                continue
            if final:
                _emit(events, ReasoningDelta, self._buf.rstrip())
                self._buf = ""
                return events
            held = partial_tag_len(self._buf, CLOSE)
            head = self._buf[: len(self._buf) - held]
            sure = head.rstrip()  # trailing whitespace may precede </think>: hold it too
            _emit(events, ReasoningDelta, sure)
            self._buf = self._buf[len(sure) :]
            return events


def _emit(
    events: list[ReasoningDelta | ContentDelta], kind: type[ReasoningDelta] | type[ContentDelta], text: str
) -> None:
    if not text:
        return
    if events and type(events[-1]) is kind:
        events[-1] = kind(events[-1].text + text)
    else:
        events.append(kind(text))
