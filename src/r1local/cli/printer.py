"""How `run` and `chat` show a streamed reply: the reasoning dim on stderr under a "Thinking..."
header, then how long it took, then the answer on stdout (so `> file` keeps only the answer).
With the reasoning hidden, a terminal shows a live "Thinking... 12 s, 340 tokens" line instead.
Model text loses its control sequences (unless raw) and, on a terminal, wraps between words."""

from __future__ import annotations

import sys
import time

from rich.status import Status

from ..engine.events import ContentDelta, Event, ReasoningDelta
from ..units import plural
from .app import err, out
from .terminal import ControlFilter, WordWrap


class ModelText:
    """One stream of model text on its way to stdout or stderr: controls removed unless `raw`,
    wrapped at word boundaries when it goes to a terminal (never in a pipe)."""

    def __init__(self, raw: bool, width: int | None) -> None:
        self._filter = None if raw else ControlFilter()
        self._wrap = WordWrap(width) if width and not raw else None

    def feed(self, text: str) -> str:
        text = self._filter.feed(text) if self._filter else text
        return self._wrap.feed(text) if self._wrap else text

    def end(self) -> str:
        text = self._filter.end() if self._filter else ""
        return self._wrap.feed(text) + self._wrap.end() if self._wrap else text


class Printer:
    def __init__(self, show_reasoning: bool, raw: bool = False, wrap: bool = True) -> None:
        self.show_reasoning = show_reasoning
        self._answer = ModelText(raw, out.width if wrap and out.is_terminal else None)
        self._reasoning = ModelText(raw, err.width if wrap and err.is_terminal else None)
        self.reasoning_tokens = 0  # one delta per generated token
        self._started = time.monotonic()
        self._thinking = False
        self._status: Status | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, ReasoningDelta):
            self._reason(event.text)
        elif isinstance(event, ContentDelta):
            self._end_thinking()
            sys.stdout.write(self._answer.feed(event.text))
            sys.stdout.flush()

    def _reason(self, text: str) -> None:
        self.reasoning_tokens += 1
        if not self._thinking:
            self._thinking = True
            self._started = time.monotonic()
            if self.show_reasoning:
                err.print("Thinking...", style="bold dim")
            elif err.is_terminal:
                self._status = err.status(self._progress(), spinner="dots")
                self._status.start()
        if self.show_reasoning:
            err.print(self._reasoning.feed(text), style="dim", end="", markup=False, emoji=False, soft_wrap=True)
        elif self._status is not None:
            self._status.update(self._progress())

    def _progress(self) -> str:
        return f"Thinking... {time.monotonic() - self._started:.0f} s, {plural(self.reasoning_tokens, 'token')}"

    def _end_thinking(self) -> None:
        if not self._thinking:
            return
        self._thinking = False
        if self._status is not None:
            self._status.stop()
            self._status = None
        if self.show_reasoning:
            err.print(self._reasoning.end(), style="dim", end="", markup=False, soft_wrap=True)
        if self.show_reasoning or err.is_terminal:
            took = time.monotonic() - self._started
            err.print(
                ("\n" if self.show_reasoning else "")
                + f"Thought for {took:.0f} s ({plural(self.reasoning_tokens, 'token')}).",
                style="bold dim",
            )

    def end(self) -> None:
        """After the last event (or an interruption): close the indicator, end the line."""
        self._end_thinking()
        sys.stdout.write(self._answer.end() + "\n")
        sys.stdout.flush()
