"""OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/completions (SSE or JSON)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..engine.events import ContentDelta, Done, ReasoningDelta, Result, Usage
from ..errors import R1Error
from .errors import client_message, error_payload
from .grammar import json_grammar
from .openai_schemas import ChatCompletionRequest, CompletionRequest, ResponseFormat
from .resolve import available_models, engine_of
from .state import get_state
from .turn import Turn, TurnResponse, start_turn

FINISH = {"stop": "stop", "length": "length", "cancelled": "stop"}


def usage_json(usage: Usage) -> dict:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def engine_error(done: Done) -> R1Error:
    return R1Error(f"Generation failed: {done.error or 'unknown engine error'}.")


def error_json(path: str, error: R1Error) -> dict:
    return error_payload(path, client_message(error), type_=error.error_type, code=error.code, param=error.param)


def grammar_for(response_format: ResponseFormat | None) -> str | None:
    if response_format is None or response_format.type == "text":
        return None
    schema = response_format.json_schema.schema_ if response_format.json_schema else None
    return json_grammar(schema, "response_format.json_schema.schema")


def router() -> APIRouter:
    api = APIRouter()

    @api.get("/v1/models")
    async def list_models(request: Request) -> dict:
        state = get_state(request)
        local = [{"id": name, "object": "model", "created": int(path.stat().st_mtime), "owned_by": "r1local",
                  "engine": engine_of(name, path, state.manager)}
                 for name, path in available_models(state.manager).items()]
        remote = [{"id": name, "object": "model", "created": 0, "owned_by": name.split("/")[0], "engine": "upstream"}
                  for name in await state.manager.upstream_models()]
        return {"object": "list", "data": local + remote}

    @api.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        grammar = await asyncio.to_thread(grammar_for, body.response_format)  # off the event loop
        turn = await start_turn(
            request, body.model, api="openai",
            submit=lambda model: model.chat(body.engine_messages(), think=body.thinking(),
                                            params=body.sampling(model.n_ctx, grammar)),
        )
        reply = _Reply(turn, body.include_usage, chat=True)
        if body.stream:
            return TurnResponse(reply.chunks(request), turn, "text/event-stream")
        return reply.whole(await turn.result(request), request.url.path)

    @api.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        turn = await start_turn(
            request, body.model, api="openai",
            submit=lambda model: model.complete(body.text, params=body.sampling(model.n_ctx)),
        )
        reply = _Reply(turn, body.include_usage, chat=False)
        if body.stream:
            return TurnResponse(reply.chunks(request), turn, "text/event-stream")
        return reply.whole(await turn.result(request), request.url.path)

    return api


class _Reply:
    """Shapes one turn's events as chat.completion(.chunk) or text_completion objects."""

    def __init__(self, turn: Turn, include_usage: bool, chat: bool) -> None:
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"  # one id for every chunk
        self.created = int(time.time())
        self.turn = turn
        self.include_usage = include_usage
        self.chat = chat

    def _object(self, choices: list[dict], *, chunk: bool, **extra) -> dict:
        kind = ("chat.completion" + (".chunk" if chunk else "")) if self.chat else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.turn.model_name,
                "system_fingerprint": "r1local", "choices": choices, **extra}

    def _choice(self, fields: dict, finish_reason: str | None, key: str) -> dict:
        """`fields` are a chat message's (or delta's) keys; completions carry only the text."""
        if self.chat:
            return {"index": 0, key: fields, "logprobs": None, "finish_reason": finish_reason}
        return {"index": 0, "text": fields.get("content", ""), "logprobs": None, "finish_reason": finish_reason}

    def _chunk(self, delta: dict | None, finish_reason: str | None = None, **extra) -> str:
        choices = [] if delta is None else [self._choice(delta, finish_reason, "delta")]
        if self.include_usage:
            extra.setdefault("usage", None)  # OpenAI: null on every chunk but the last
        return sse(self._object(choices, chunk=True, **extra))

    def whole(self, result: Result, path: str) -> JSONResponse | dict:
        done = result.done
        if done is None or done.finish_reason == "error":
            error = engine_error(done) if done else R1Error("Generation ended without a result.")
            return JSONResponse(error_json(path, error), status_code=error.http_status)
        message = {"role": "assistant", "content": result.content}
        if result.reasoning:
            message["reasoning_content"] = result.reasoning
        choice = self._choice(message, FINISH[done.finish_reason], "message")
        return self._object([choice], chunk=False, usage=usage_json(done.usage))

    async def chunks(self, request: Request) -> AsyncIterator[str]:
        if self.chat:
            yield self._chunk({"role": "assistant", "content": ""})
        async for event in self.turn.events(request):
            if isinstance(event, ContentDelta):
                yield self._chunk({"content": event.text})
            elif isinstance(event, ReasoningDelta):
                yield self._chunk({"reasoning_content": event.text})
            elif event.finish_reason == "error":  # headers are gone: the error is the last event
                yield sse(error_json(request.url.path, engine_error(event)))
                break
            else:
                yield self._chunk({}, FINISH[event.finish_reason])
                if self.include_usage:
                    yield self._chunk(None, usage=usage_json(event.usage))
        yield sse("[DONE]")
