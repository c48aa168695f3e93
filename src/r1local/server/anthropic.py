"""Anthropic's Messages API: POST /v1/messages (whole or streamed with Anthropic's events) and
POST /v1/messages/count_tokens. The body becomes the one chat request (anthropic_schemas.py); the
engine's events become content blocks (blocks.py): R1's reasoning a `thinking` block, the answer
`text`, each call `tool_use`. Errors answer in Anthropic's shape (errors.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import APIRouter, Request

from .. import presets
from ..engine.events import Done
from ..errors import R1Error
from ..request import prepare, submit
from .anthropic_schemas import CountTokensRequest, MessagesRequest
from .blocks import Added, Block, Closed, Opened, transitions
from .errors import client_message, error_payload
from .state import get_state
from .tolerance import check_fields
from .turn import Turn, TurnResponse, acquire, check_declared, start_turn


def stop_reason(done: Done, called: bool) -> str:
    if done.finish_reason == "length":
        return "max_tokens"
    if done.stop_word is not None:
        return "stop_sequence"
    return "tool_use" if called else "end_turn"


def usage(done: Done | None) -> dict:
    """Anthropic counts the prompt's cached part apart from the rest; all zero until the end."""
    cached = done.usage.cached_tokens if done else 0
    return {
        "input_tokens": done.usage.prompt_tokens - cached if done else 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": done.usage.completion_tokens if done else 0,
    }


def content_block(block: Block, *, whole: bool) -> dict:
    """A block as it starts (empty) or, whole, as it ended."""
    if block.kind == "reasoning":
        return {"type": "thinking", "thinking": block.text if whole else "", "signature": ""}
    if block.kind == "text":
        return {"type": "text", "text": block.text if whole else ""}
    return {
        "type": "tool_use",
        "id": block.call_id,
        "name": block.name,
        "input": _arguments(block.arguments or block.text) if whole else {},
    }


def _arguments(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


DELTAS = {
    "reasoning": ("thinking_delta", "thinking"),
    "text": ("text_delta", "text"),
    "call": ("input_json_delta", "partial_json"),
}


def sse(event: dict) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"


class MessageReply:
    def __init__(self, turn: Turn, model: str) -> None:
        self.turn = turn
        self.message: dict[str, Any] = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }

    async def whole(self, request: Request) -> dict:
        blocks, done = [], None
        async for step in transitions(self.turn.events(request)):
            if isinstance(step, Closed):
                blocks.append(step.block)
            elif isinstance(step, Done):
                done = step
        if done is None or done.finish_reason == "error":
            raise R1Error(f"Generation failed: {(done.error if done else None) or 'unknown engine error'}.")
        called = any(b.kind == "call" and b.arguments is not None for b in blocks)
        return {
            **self.message,
            "content": [content_block(b, whole=True) for b in blocks],
            "stop_reason": stop_reason(done, called),
            "stop_sequence": done.stop_word,
            "usage": usage(done),
        }

    async def events(self, request: Request) -> AsyncIterator[str]:
        """Anthropic's event order: message_start, ping, then per block content_block_start, its
        deltas and content_block_stop, then message_delta with the stop reason and message_stop."""
        yield sse({"type": "message_start", "message": {**self.message, "usage": usage(None)}})
        yield sse({"type": "ping"})
        called = False
        async for step in transitions(self.turn.events(request)):
            if isinstance(step, Opened):
                yield sse(
                    {
                        "type": "content_block_start",
                        "index": step.block.index,
                        "content_block": content_block(step.block, whole=False),
                    }
                )
            elif isinstance(step, Added):
                kind, field = DELTAS[step.block.kind]
                yield sse(
                    {
                        "type": "content_block_delta",
                        "index": step.block.index,
                        "delta": {"type": kind, field: step.delta},
                    }
                )
            elif isinstance(step, Closed):
                if step.block.kind == "reasoning":  # clients keep it to send back; it is not checked here
                    yield sse(
                        {
                            "type": "content_block_delta",
                            "index": step.block.index,
                            "delta": {"type": "signature_delta", "signature": ""},
                        }
                    )
                called |= step.block.kind == "call" and step.block.arguments is not None
                yield sse({"type": "content_block_stop", "index": step.block.index})
            elif step.finish_reason == "error":  # headers are gone: the error is the last event
                error = R1Error(f"Generation failed: {step.error or 'unknown engine error'}.")
                yield sse(
                    error_payload(
                        request.url.path, client_message(error), type_="api_error", code=None, param=None, status=500
                    )
                )
                return
            else:
                yield sse(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop_reason(step, called), "stop_sequence": step.stop_word},
                        "usage": usage(step),
                    }
                )
                yield sse({"type": "message_stop"})


def router() -> APIRouter:
    api = APIRouter()

    @api.post("/v1/messages")
    async def messages(body: MessagesRequest, request: Request):
        state = get_state(request)
        check_fields(body, state.settings)
        chat = state.settings.apply(presets.with_preset(body.model, body.to_request()))
        await check_declared(request, body.model, chat)
        turn = await start_turn(request, body.model, partial(submit, chat), api="anthropic")
        reply = MessageReply(turn, body.model)
        if body.stream:
            return TurnResponse(reply.events(request), turn, "text/event-stream")
        return await reply.whole(request)

    @api.post("/v1/messages/count_tokens")
    async def count_tokens(body: CountTokensRequest, request: Request) -> dict:
        state = get_state(request)
        check_fields(body, state.settings)
        chat = state.settings.apply(presets.with_preset(body.model, body.to_request()))
        lease = await acquire(request, body.model)
        try:
            return {"input_tokens": await asyncio.to_thread(lambda: prepare(chat, lease.model).count(lease.model))}
        finally:
            lease.release()

    return api
