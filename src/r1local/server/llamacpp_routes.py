"""llama-server's native API, so clients written for it work unchanged: /completion (streamed as
server-sent events too), /infill (code editors' fill-in-the-middle), /tokenize, /detokenize,
/apply-template, /props and /slots (read-only).
llama-server holds one model; here a request may name one with `model`, else the first loaded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from .. import __version__
from ..engine.events import ContentDelta, Done, ReasoningDelta
from ..engine.base import Engine
from ..engine.params import SamplingParams
from ..engine.stream import Stream
from ..errors import R1Error, UsageError
from ..request import ChatRequest, prepare, sampling_params
from ..request.grammar import MAX_GRAMMAR_CHARS, json_grammar
from ..request.prepare import check_generation
from .manager import Lease
from .schema_base import MAX_MESSAGES, MAX_STOPS, SEED, STOP, TOP_K, Strict
from .state import ServerState, get_state
from .tolerance import check_fields
from .turn import Turn, TurnResponse, acquire, start_turn

STOP_TYPES = {"stop": "eos", "length": "limit", "cancelled": "none", "error": "none"}


class NamedModel(Strict):
    model: str | None = None  # llama-server ignores it; here it picks among the loaded models


class CompletionRequest(NamedModel):
    prompt: str | list[str]
    n_predict: int | None = Field(None, ge=-1)
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    top_k: TOP_K | None = None
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, gt=0.0, le=10.0)
    repeat_last_n: int | None = Field(None, ge=0, le=2**31 - 1)  # clamped to the context
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    seed: SEED | None = None
    stop: list[STOP] | None = Field(None, max_length=MAX_STOPS)
    stream: bool = False
    grammar: str | None = Field(None, max_length=MAX_GRAMMAR_CHARS)
    json_schema: dict[str, Any] | None = None
    ignore_eos: bool | None = None
    cache_prompt: bool | None = None  # prompt reuse is always on

    @property
    def text(self) -> str:
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise UsageError("Send one prompt per request.", param="prompt")
            return self.prompt[0]
        return self.prompt


class ExtraFile(Strict):
    filename: str = Field("", max_length=4096)
    text: str


class InfillRequest(CompletionRequest):
    """llama-server's /infill: the code before and after the cursor, other files as context, and
    `prompt`, the start of the answer."""

    input_prefix: str = ""
    input_suffix: str = ""
    input_extra: list[ExtraFile] = Field(default_factory=list, max_length=MAX_MESSAGES)
    prompt: str = ""


class TokenizeRequest(NamedModel):
    content: str
    add_special: bool = False
    with_pieces: bool = False


class DetokenizeRequest(NamedModel):
    tokens: list[int] = Field(max_length=1 << 20)


class ApplyTemplateRequest(NamedModel):
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_MESSAGES)


def _default_model(state: ServerState, name: str | None) -> str:
    if name:
        return name
    names = [entry.name for entry in state.manager.loaded()] + list(state.manager.registered())
    if not names:
        raise UsageError("No model is loaded; name one with \"model\".", param="model")
    return names[0]


async def _lease(request: Request, body: NamedModel) -> Lease:
    state = get_state(request)
    check_fields(body, state.settings)
    return await acquire(request, _default_model(state, body.model))


def _with_model(request: Request, body: NamedModel, use) -> Any:
    """Run `use(model)` on a held model in a worker thread (tokenising and rendering take time),
    releasing it afterwards."""
    async def run():
        lease = await _lease(request, body)
        try:
            return await asyncio.to_thread(use, lease.model)
        finally:
            lease.release()
    return run()


def router() -> APIRouter:
    api = APIRouter()

    @api.post("/completion")
    @api.post("/completions", include_in_schema=False)  # llama-server's alias of /completion
    async def completion(body: CompletionRequest, request: Request):
        return await _answer(request, body, lambda model, params: model.complete(body.text, params=params))

    @api.post("/infill")
    async def infill(body: InfillRequest, request: Request):
        files = [(f.filename, f.text) for f in body.input_extra]
        return await _answer(request, body, lambda model, params: model.infill(
            body.input_prefix, body.input_suffix, files=files, middle=body.prompt, params=params))

    @api.post("/tokenize")
    async def tokenize(body: TokenizeRequest, request: Request) -> dict:
        def use(model: Engine) -> dict:
            vocab = model.gguf_vocab()
            tokens = vocab.tokenize(body.content, add_special=body.add_special)
            if not body.with_pieces:
                return {"tokens": tokens}
            return {"tokens": [{"id": t, "piece": vocab.piece(t).decode("utf-8", "replace")} for t in tokens]}
        return await _with_model(request, body, use)

    @api.post("/detokenize")
    async def detokenize(body: DetokenizeRequest, request: Request) -> dict:
        def use(model: Engine) -> dict:
            vocab = model.gguf_vocab()
            if any(not 0 <= t < vocab.n_vocab for t in body.tokens):
                raise UsageError(f"Token ids must be between 0 and {vocab.n_vocab - 1}.", param="tokens")
            return {"content": b"".join(vocab.piece(t) for t in body.tokens).decode("utf-8", "replace")}
        return await _with_model(request, body, use)

    @api.post("/apply-template")
    async def apply_template(body: ApplyTemplateRequest, request: Request) -> dict:
        chat = ChatRequest(body.messages)  # the prompt a chat request would give, the same for every dialect
        return await _with_model(request, body, lambda model: {"prompt": prepare(chat, model).prompt(model)})

    @api.get("/props")
    async def props(request: Request) -> dict:
        state = get_state(request)
        entry = next(iter(state.manager.loaded()), None)
        model = entry.model if entry else None
        defaults = SamplingParams()
        return {
            "default_generation_settings": {"n_ctx": model.n_ctx if model else None, "params": {
                "temperature": defaults.temperature, "top_p": defaults.top_p, "top_k": defaults.top_k,
                "min_p": defaults.min_p, "repeat_penalty": defaults.repeat_penalty}},
            "total_slots": model.n_parallel if model else state.settings.parallel,
            "model_alias": entry.name if entry else None,
            "model_path": model.path.name if model else None,  # the file's name only: paths stay private
            "chat_template": model.template.source if model else None,
            "modalities": {"vision": False, "audio": False},
            "build_info": f"r1local {__version__}",
        }

    @api.get("/slots")
    async def slots(request: Request) -> list[dict]:
        entries = get_state(request).manager.loaded()
        return [{"id": slot.seq, "model": entry.name, "n_ctx": entry.model.n_ctx,
                 "is_processing": slot.active is not None}
                for entry in entries for slot in entry.model.scheduler.slots]

    return api


async def _answer(request: Request, body: CompletionRequest, start: Callable[[Engine, SamplingParams], Stream]):
    """Generate for /completion or /infill: `start(model, params)` makes the stream; the answer is
    one JSON object, or server-sent events with `stream`."""
    state = get_state(request)
    check_fields(body, state.settings)

    def submit(model: Engine):  # in a worker thread: the grammar, the sampler and the prompt take time
        grammar = body.grammar or (
            json_grammar(body.json_schema, "json_schema") if body.json_schema is not None else None)
        params = sampling_params(
            model.capabilities.context_length, max_tokens=body.n_predict,
            stop=list(body.stop or []), grammar=grammar, temperature=body.temperature, top_k=body.top_k,
            top_p=body.top_p, min_p=body.min_p, repeat_penalty=body.repeat_penalty,
            repeat_last_n=body.repeat_last_n, presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty, seed=body.seed, ignore_eos=body.ignore_eos)
        check_generation(params, model)
        return start(model, params)

    turn = await start_turn(request, _default_model(state, body.model), submit, api="llama.cpp")
    if body.stream:
        return TurnResponse(_completion_chunks(turn, request), turn, "text/event-stream")
    result = await turn.result(request)
    if result.done is None or result.done.finish_reason == "error":
        error = R1Error(f"Generation failed: {result.done.error if result.done else 'no result'}.")
        return JSONResponse({"error": {"code": 500, "message": str(error), "type": "server_error"}}, 500)
    return _final(turn, result.done, result.content)


def _final(turn: Turn, done: Done, content: str) -> dict:
    t = done.timings
    return {
        "content": content, "stop": True, "model": turn.model_name,
        "tokens_predicted": done.usage.completion_tokens, "tokens_evaluated": done.usage.prompt_tokens,
        "tokens_cached": done.usage.cached_tokens, "stop_type": STOP_TYPES[done.finish_reason],
        "stopping_word": "", "truncated": done.finish_reason == "length",
        "timings": {"prompt_n": done.usage.prompt_tokens - done.usage.cached_tokens,
                    "prompt_ms": t.prompt_s * 1e3, "prompt_per_second": t.prompt_tokens_per_s,
                    "predicted_n": done.usage.completion_tokens, "predicted_ms": t.generation_s * 1e3,
                    "predicted_per_second": t.generation_tokens_per_s},
    }


async def _completion_chunks(turn: Turn, request: Request) -> AsyncIterator[str]:
    async for event in turn.events(request):
        if isinstance(event, (ContentDelta, ReasoningDelta)):
            body = {"content": event.text, "stop": False}
        elif event.finish_reason == "error":
            body = {"error": {"code": 500, "message": f"Generation failed: {event.error}.", "type": "server_error"}}
        else:
            body = _final(turn, event, "")
        yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
