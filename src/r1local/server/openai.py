"""OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/completions (SSE or JSON)."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

from fastapi import APIRouter, Request

from ..engine.base import Engine
from .chat import ChatSubmission, budget_of
from .grammar import json_grammar
from .openai_reply import Reply
from .openai_schemas import ChatCompletionRequest, CompletionRequest, ResponseFormat
from .logit_bias import biased
from .resolve import available_models, engine_of, lenient_name
from .state import get_state
from .tolerance import check_fields
from .turn import TurnResponse, start_turns


def model_card(name: str, path: Path, engine: str) -> dict:
    return {"id": name, "object": "model", "created": int(path.stat().st_mtime), "owned_by": "r1local",
            "engine": engine}


def grammar_for(response_format: ResponseFormat | None) -> str | None:
    if response_format is None or response_format.type == "text":
        return None
    schema = response_format.json_schema.schema_ if response_format.json_schema else None
    return json_grammar(schema, "response_format.json_schema.schema")


def router() -> APIRouter:
    api = APIRouter()

    @api.get("/v1/models")
    @api.get("/models", include_in_schema=False)  # llama-server serves OpenAI's routes without /v1 too
    async def list_models(request: Request) -> dict:
        state = get_state(request)
        local = [model_card(name, path, engine_of(name, path, state.manager))
                 for name, path in available_models(state.manager).items()]
        remote = [{"id": name, "object": "model", "created": 0, "owned_by": state.manager.address(name).upstream,
                   "engine": "upstream"} for name in await state.manager.upstream_models()]
        return {"object": "list", "data": local + remote}

    @api.get("/v1/models/{model_id:path}")
    @api.get("/models/{model_id:path}", include_in_schema=False)
    async def retrieve_model(model_id: str, request: Request) -> dict:
        manager = get_state(request).manager
        path = await asyncio.to_thread(manager.path_of, model_id)
        return model_card(model_id, path, engine_of(model_id, path, manager))

    @api.post("/v1/chat/completions")
    @api.post("/chat/completions", include_in_schema=False)
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        state = get_state(request)
        check_fields(body, state.settings)
        grammar = await asyncio.to_thread(lambda: grammar_for(body.response_format) or body.own_grammar())
        submission = ChatSubmission(
            body.engine_messages(), body.thinking(), body.sampling,
            grammar=grammar, tools=body.tools,
            tool_choice=body.tool_choice, parallel_tool_calls=body.parallel_tool_calls,
            continue_final=body.continue_final_message is not False,
            trim=state.settings.trim and body.truncate is not False,
            think_budget=budget_of(body.reasoning_budget_tokens, body.reasoning_effort, state.settings.think_budget),
            logit_bias=body.logit_bias)
        model = lenient_name(state.manager, body.model)
        turns = await start_turns(request, model, body.choices(submission), api="openai")
        reply = Reply(turns, body.include_usage, chat=True, reasoning_inline=body.reasoning_inline,
                      logprobs=bool(body.logprobs))
        if body.stream:
            return TurnResponse(reply.chunks(request), turns, "text/event-stream")
        return await reply.whole(request)

    @api.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        state = get_state(request)
        check_fields(body, state.settings)
        def submit(model: Engine, choice: int):
            params = biased(body.sampling(model.n_ctx, body.own_grammar(), choice), body.logit_bias, model)
            return model.complete(body.text, params=params, suffix=body.suffix or None)

        submits = [partial(submit, choice=i) for i in range(body.n)]
        turns = await start_turns(request, lenient_name(state.manager, body.model), submits, api="openai")
        reply = Reply(turns, body.include_usage, chat=False, echo=body.text if body.echo else "",
                      logprobs=body.logprobs is not None)
        if body.stream:
            return TurnResponse(reply.chunks(request), turns, "text/event-stream")
        return await reply.whole(request)

    return api
