"""The engine's events as the content blocks that Anthropic's Messages and OpenAI's Responses are
made of: the reasoning, the answer's text and each tool call open a block of their own, deltas
fill it, and a block closes when the next kind starts or the generation ends. Both dialects read
the same transitions, whole or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from ..engine.events import (
    ContentDelta,
    Done,
    Event,
    ReasoningDelta,
    ToolCall,
    ToolCallDelta,
)


@dataclass
class Block:
    kind: Literal["reasoning", "text", "call"]
    index: int  # its position in the reply
    text: str = ""  # everything so far; a call's: its JSON arguments
    call_id: str = ""
    name: str = ""
    arguments: str | None = None  # a call's arguments once complete (compact JSON)


@dataclass
class Opened:
    block: Block


@dataclass
class Added:
    block: Block
    delta: str


@dataclass
class Closed:
    block: Block


Transition = Opened | Added | Closed | Done


async def transitions(events: AsyncIterator[Event]) -> AsyncIterator[Transition]:
    """Opened, Added and Closed for each block, then the Done event. A call read whole (never
    streamed) opens, fills and closes at once."""
    open_: Block | None = None
    count = 0

    def new(kind: Literal["reasoning", "text", "call"], call_id: str = "", name: str = "") -> Block:
        nonlocal count
        count += 1
        return Block(kind, count - 1, call_id=call_id, name=name)

    async for event in events:
        if isinstance(event, (ReasoningDelta, ContentDelta)):
            kind: Literal["reasoning", "text"] = "reasoning" if isinstance(event, ReasoningDelta) else "text"
            if open_ is not None and open_.kind != kind:
                yield Closed(open_)
                open_ = None
            if open_ is None:
                open_ = new(kind)
                yield Opened(open_)
            open_.text += event.text
            yield Added(open_, event.text)
        elif isinstance(event, ToolCallDelta):
            if open_ is None or open_.kind != "call" or open_.call_id != event.id:
                if open_ is not None:
                    yield Closed(open_)
                open_ = new("call", call_id=event.id, name=event.name)
                yield Opened(open_)
            if event.arguments:
                open_.text += event.arguments
                yield Added(open_, event.arguments)
        elif isinstance(event, ToolCall):
            if open_ is None or open_.call_id != event.id:  # read whole
                if open_ is not None:
                    yield Closed(open_)
                open_ = new("call", call_id=event.id, name=event.name)
                yield Opened(open_)
                open_.text = event.arguments
                yield Added(open_, event.arguments)
            open_.arguments = event.arguments
            yield Closed(open_)
            open_ = None
        elif isinstance(event, Done):
            if open_ is not None:
                yield Closed(open_)
                open_ = None
            yield event
