"""OpenAI's Responses API: POST /v1/responses (whole, or streamed with its semantic events in
OpenAI's order), GET and DELETE /v1/responses/{id} over the bounded store (response_store.py),
and `previous_response_id` continuing a stored conversation. The body becomes the one chat
request (responses_schemas.py); the engine's events become output items (blocks.py): R1's
reasoning a `reasoning` item, the answer a `message`, each call a `function_call`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import APIRouter, Request

from .. import presets
from ..engine.events import Done
from ..errors import NotFound, UsageError
from ..request import submit
from .blocks import Added, Block, Closed, Opened, transitions
from .llamacpp_completion import llama_timings, progress_timings
from .openai_reply import engine_error
from .resolve import lenient_name
from .responses_schemas import ResponsesRequest
from .state import get_state
from .tolerance import check_fields
from .turn import Turn, TurnResponse, check_declared, start_turn

PREFIX = {"reasoning": "rs", "text": "msg", "call": "fc"}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def output_item(block: Block, item_id: str, *, done: bool) -> dict:
    """The item a block is: as it starts (empty, in progress) or as it ended."""
    status = "completed" if done else "in_progress"
    if block.kind == "reasoning":
        return {
            "id": item_id,
            "type": "reasoning",
            "summary": [],
            "status": status,
            "content": [{"type": "reasoning_text", "text": block.text}] if done else [],
        }
    if block.kind == "text":
        return {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": [text_part(block.text)] if done else [],
        }
    if done and block.arguments is None:  # the output ended inside the call
        status = "incomplete"
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": block.call_id,
        "name": block.name,
        "arguments": (block.arguments or block.text) if done else "",
        "status": status,
    }


def text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def usage_json(done: Done) -> dict:
    u = done.usage
    return {
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    }


class ResponseReply:
    def __init__(self, turn: Turn, body: ResponsesRequest, conversation: list[dict], request: Request) -> None:
        self.turn = turn
        self.body = body
        self.conversation = conversation  # what the model read, for the store
        self.store = get_state(request).responses
        self.sequence = 0
        self.response = {
            "id": _id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "error": None,
            "incomplete_details": None,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "model": turn.model_name,
            "output": [],
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": body.previous_response_id,
            "reasoning": {"effort": body.reasoning.effort if body.reasoning else None, "summary": None},
            "store": body.store,
            "temperature": body.temperature,
            "top_p": body.top_p,
            "text": {
                "format": body.text.format.model_dump(by_alias=True, exclude_none=True)
                if body.text and body.text.format
                else {"type": "text"}
            },
            "tool_choice": body.tool_choice
            if isinstance(body.tool_choice, str) or body.tool_choice is None
            else body.tool_choice.model_dump(),
            "tools": [t.model_dump(exclude_none=True) for t in body.tools or []],
            "truncation": body.truncation or "auto",
            "usage": None,
            "user": body.user,
            "metadata": body.metadata or {},
        }
        if self.response["tool_choice"] is None:
            self.response["tool_choice"] = "auto"

    def _finish(self, done: Done, items: list[dict]) -> dict:
        incomplete = done.finish_reason == "length"
        self.response.update(
            status="incomplete" if incomplete else "completed",
            output=items,
            usage=usage_json(done),
            incomplete_details={"reason": "max_output_tokens"} if incomplete else None,
        )
        if self.body.store:
            self.store.put(self.response, self.conversation + [answer_message(items)])
        return self.response

    async def whole(self, request: Request) -> dict:
        items, done = [], None
        async for step in transitions(self.turn.events(request)):
            if isinstance(step, Closed):
                items.append(output_item(step.block, _id(PREFIX[step.block.kind]), done=True))
            elif isinstance(step, Done):
                done = step
        if done is None or done.finish_reason == "error":
            raise engine_error(done)
        return self._finish(done, items)

    def _event(self, kind: str, **fields) -> str:
        self.sequence += 1
        event = {"type": kind, "sequence_number": self.sequence - 1, **fields}
        return f"event: {kind}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"

    async def events(self, request: Request) -> AsyncIterator[str]:
        """response.created and .in_progress; per item output_item.added, its content's events
        (reasoning_text, content_part and output_text, function_call_arguments) and
        output_item.done; then response.completed with the usage."""
        yield self._event("response.created", response=self.response)
        yield self._event("response.in_progress", response=self.response)
        items: list[dict] = []
        ids: dict[int, str] = {}
        progress, progressed = self.turn.stream.progress, False
        async for step in transitions(self.turn.events(request)):
            if self.body.return_progress and not progressed and progress.first_token:
                progressed = True  # the prompt is evaluated whole before the first token: one event says so
                prompt_progress = {
                    "total": progress.prompt_tokens,
                    "cache": progress.cached_tokens,
                    "processed": progress.prompt_tokens,
                    "time_ms": progress.prompt_s * 1e3,
                }
                yield self._event("response.in_progress", response=self.response, prompt_progress=prompt_progress)
            if isinstance(step, Opened):
                block = step.block
                ids[block.index] = item_id = _id(PREFIX[block.kind])
                yield self._event(
                    "response.output_item.added", output_index=block.index, item=output_item(block, item_id, done=False)
                )
                if block.kind == "text":
                    yield self._event(
                        "response.content_part.added",
                        item_id=item_id,
                        output_index=block.index,
                        content_index=0,
                        part=text_part(""),
                    )
            elif isinstance(step, Added):
                block, where = step.block, {"item_id": ids[step.block.index], "output_index": step.block.index}
                if self.body.timings_per_token:
                    where["timings"] = progress_timings(progress)
                if block.kind == "call":
                    yield self._event("response.function_call_arguments.delta", **where, delta=step.delta)
                else:
                    kind = "response.output_text.delta" if block.kind == "text" else "response.reasoning_text.delta"
                    extra: dict[str, Any] = {"logprobs": []} if block.kind == "text" else {}
                    yield self._event(kind, **where, content_index=0, delta=step.delta, **extra)
            elif isinstance(step, Closed):
                block, where = step.block, {"item_id": ids[step.block.index], "output_index": step.block.index}
                item = output_item(block, ids[block.index], done=True)
                if block.kind == "call":
                    yield self._event(
                        "response.function_call_arguments.done", **where, name=block.name, arguments=item["arguments"]
                    )
                elif block.kind == "text":
                    yield self._event(
                        "response.output_text.done", **where, content_index=0, text=block.text, logprobs=[]
                    )
                    yield self._event(
                        "response.content_part.done", **where, content_index=0, part=text_part(block.text)
                    )
                else:
                    yield self._event("response.reasoning_text.done", **where, content_index=0, text=block.text)
                items.append(item)
                yield self._event("response.output_item.done", output_index=block.index, item=item)
            elif step.finish_reason == "error":  # headers are gone: the error is the last event
                error = engine_error(step)
                yield self._event("error", message=str(error), code=error.code, param=None)
                return
            else:
                # completed even when cut short (its status says incomplete): clients wait for this event
                usage = step.usage
                prompt_n = usage.prompt_tokens - usage.cached_tokens
                timings = llama_timings(step.timings, usage.cached_tokens, prompt_n, usage.completion_tokens)
                yield self._event("response.completed", response=self._finish(step, items), timings=timings)


def answer_message(items: list[dict]) -> dict:
    """A response's output as the assistant turn the next request continues from."""
    text = "".join(part["text"] for item in items if item["type"] == "message" for part in item["content"])
    calls = [
        {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": item["arguments"]}}
        for item in items
        if item["type"] == "function_call"
    ]
    return {"role": "assistant", "content": text, **({"tool_calls": calls} if calls else {})}


def router() -> APIRouter:
    api = APIRouter()

    @api.post("/v1/responses")
    @api.post("/responses", include_in_schema=False)
    async def create(body: ResponsesRequest, request: Request):
        state = get_state(request)
        check_fields(body, state.settings)
        history: list[dict] = []
        if body.previous_response_id:
            stored = state.responses.get(body.previous_response_id)
            if stored is None:
                raise UsageError(
                    f"Previous response {body.previous_response_id!r} is not kept here: this server keeps "
                    "its latest responses in memory while it runs.",
                    "Send the whole conversation as input instead.",
                    param="previous_response_id",
                )
            history = stored.conversation
        chat = state.settings.apply(presets.with_preset(body.model, body.to_request(history)))
        model = lenient_name(state.manager, body.model)
        await check_declared(request, model, chat)
        turn = await start_turn(request, model, partial(submit, chat), api="responses")
        reply = ResponseReply(turn, body, chat.messages, request)
        if body.stream:
            return TurnResponse(reply.events(request), turn, "text/event-stream")
        return await reply.whole(request)

    @api.get("/v1/responses/{response_id}")
    async def retrieve(response_id: str, request: Request) -> dict:
        stored = get_state(request).responses.get(response_id)
        if stored is None:
            raise NotFound(f"No stored response {response_id!r}.", param="response_id")
        return stored.response

    @api.delete("/v1/responses/{response_id}")
    async def delete(response_id: str, request: Request) -> dict:
        if not get_state(request).responses.delete(response_id):
            raise NotFound(f"No stored response {response_id!r}.", param="response_id")
        return {"id": response_id, "object": "response", "deleted": True}

    return api
