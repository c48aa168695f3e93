"""OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/completions (SSE or JSON)."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

from fastapi import APIRouter, Request

from .. import presets
from ..engine.base import Engine
from ..engine.stream import Stream
from ..engine.upstream import UPSTREAM_CAPABILITIES
from ..errors import R1Error
from ..request.logit_bias import biased
from ..request.prepare import check_generation
from .manager import ModelManager
from .openai_reply import Reply
from .openai_schemas import ChatCompletionRequest, CompletionRequest
from .resolve import available_models, capabilities_of, engine_of, lenient_name
from .state import get_state
from .tolerance import check_fields
from .turn import TurnResponse, start_chat, start_turns


def model_card(name: str, path: Path, manager: ModelManager) -> dict:
    """OpenAI's model object, with the engine and what it declares it can do (blocking: reads the header)."""
    card = {
        "id": name,
        "object": "model",
        "created": int(path.stat().st_mtime),
        "owned_by": "r1local",
        "engine": engine_of(name, path, manager),
    }
    try:
        card["capabilities"] = capabilities_of(name, path, manager).as_dict()
    except R1Error:  # a damaged or partial file is still listed; what it can do is unknown
        pass
    return card


def router() -> APIRouter:
    api = APIRouter()

    @api.get("/v1/models")
    @api.get("/models", include_in_schema=False)  # llama-server serves OpenAI's routes without /v1 too
    async def list_models(request: Request) -> dict:
        state = get_state(request)
        local = await asyncio.to_thread(
            lambda: [model_card(name, path, state.manager) for name, path in available_models(state.manager).items()]
        )
        remote = [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": state.manager.address(name).upstream,
                "engine": "upstream",
                "capabilities": UPSTREAM_CAPABILITIES.as_dict(),
            }
            for name in await state.manager.upstream_models()
        ]
        return {"object": "list", "data": local + remote}

    @api.get("/v1/models/{model_id:path}")
    @api.get("/models/{model_id:path}", include_in_schema=False)
    async def retrieve_model(model_id: str, request: Request) -> dict:
        manager = get_state(request).manager
        return await asyncio.to_thread(lambda: model_card(model_id, manager.path_of(model_id), manager))

    @api.post("/v1/chat/completions")
    @api.post("/chat/completions", include_in_schema=False)
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        state = get_state(request)
        check_fields(body, state.settings)
        chat = state.settings.apply(presets.with_preset(body.model, body.to_request()))
        turns = await start_chat(request, lenient_name(state.manager, body.model), chat, api="openai")
        reply = Reply(
            turns, body.include_usage, chat=True, reasoning_inline=body.reasoning_inline, logprobs=bool(body.logprobs)
        )
        if body.stream:
            return TurnResponse(reply.chunks(request), turns, "text/event-stream")
        return await reply.whole(request)

    @api.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        state = get_state(request)
        check_fields(body, state.settings)

        def complete(model: Engine, choice: int) -> Stream:
            params = body.sampling(model.capabilities.context_length, choice, model.default_max_tokens)
            params = biased(params, body.logit_bias, model)
            check_generation(params, model)
            return model.complete(body.text, params=params, suffix=body.suffix or None)

        submits = [partial(complete, choice=i) for i in range(body.n)]
        turns = await start_turns(request, lenient_name(state.manager, body.model), submits, api="openai")
        reply = Reply(
            turns,
            body.include_usage,
            chat=False,
            echo=body.text if body.echo else "",
            logprobs=body.logprobs is not None,
        )
        if body.stream:
            return TurnResponse(reply.chunks(request), turns, "text/event-stream")
        return await reply.whole(request)

    return api
