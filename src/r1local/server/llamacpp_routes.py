"""llama-server's native API, so clients written for it work unchanged: /completion (streamed as
server-sent events too), /infill (code editors' fill-in-the-middle), /tokenize, /detokenize,
/apply-template, /props and /slots (read-only).
llama-server holds one model; here a request may name one with `model`, else it gets the default one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from .. import __version__, presets
from ..engine.base import Engine
from ..engine.params import SamplingParams
from ..errors import UsageError
from ..request import ChatRequest, prepare
from .llamacpp_completion import CompletionRequest, InfillRequest, NamedModel, answer, complete
from .manager import Lease
from .resolve import lenient_name
from .schema_base import MAX_MESSAGES
from .state import get_state
from .tolerance import check_fields
from .turn import acquire


class TokenizeRequest(NamedModel):
    content: str
    add_special: bool = False
    with_pieces: bool = False


class DetokenizeRequest(NamedModel):
    tokens: list[int] = Field(max_length=1 << 20)


class ApplyTemplateRequest(NamedModel):
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_MESSAGES)


async def _lease(request: Request, body: NamedModel) -> Lease:
    state = get_state(request)
    check_fields(body, state.settings)
    return await acquire(request, lenient_name(state.manager, body.model))


def _with_model(request: Request, body: NamedModel, use) -> Any:
    """Run `use(model)` on a held model in a worker thread (tokenising and rendering take time),
    releasing it afterwards."""

    async def run():
        lease = await _lease(request, body)
        try:
            return await lease.work(use, lease.model)
        finally:
            lease.release()

    return run()


def router() -> APIRouter:
    api = APIRouter()

    @api.post("/completion")
    @api.post("/completions", include_in_schema=False)  # llama-server's alias of /completion
    async def completion(body: CompletionRequest, request: Request):
        return await answer(request, body, complete)

    @api.post("/infill")
    async def infill(body: InfillRequest, request: Request):
        files = [(f.filename, f.text) for f in body.input_extra]
        return await answer(
            request,
            body,
            lambda _prompt, model, params: model.infill(
                body.input_prefix, body.input_suffix, files=files, middle=body.prompt, params=params
            ),
        )

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
        # the prompt a chat request would give, the same for every dialect (a preset's settings included)
        chat = presets.with_preset(body.model, ChatRequest(body.messages))
        return await _with_model(request, body, lambda model: {"prompt": prepare(chat, model).prompt(model)})

    @api.get("/props")
    async def props(request: Request) -> dict:
        state = get_state(request)
        entry = next(iter(state.manager.loaded()), None)
        model = entry.model if entry else None
        defaults = SamplingParams()
        return {
            "default_generation_settings": {
                "n_ctx": model.n_ctx if model else None,
                "params": {
                    "temperature": defaults.temperature,
                    "top_p": defaults.top_p,
                    "top_k": defaults.top_k,
                    "min_p": defaults.min_p,
                    "repeat_penalty": defaults.repeat_penalty,
                },
            },
            "total_slots": model.n_parallel if model else state.settings.parallel,
            "model_alias": entry.name if entry else None,
            "model_path": model.path.name if model else None,  # the file's name only: paths stay private
            "chat_template": model.template.source if model else None,
            "modalities": {"vision": False, "audio": False},
            "build_info": f"r1local {__version__}",
        }

    @api.get("/slots")
    async def slots(request: Request) -> list[dict]:
        """The slots of the llama.cpp models in this process (OpenVINO and RPC splits keep theirs elsewhere)."""
        from ..engine.model import Model  # loaded with the first llama.cpp model, not at import

        entries = get_state(request).manager.loaded()
        return [
            {"id": slot.seq, "model": entry.name, "n_ctx": entry.model.n_ctx, "is_processing": slot.active is not None}
            for entry in entries
            if isinstance(entry.model, Model)
            for slot in entry.model.scheduler.slots
        ]

    return api
