"""Ollama-compatible routes: /api/chat, /api/generate (NDJSON streams), /api/tags, /api/ps,
/api/show, /api/pull, /api/version; keep_alive per request as Ollama defines it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .. import __version__, presets, store
from ..engine.base import Engine
from ..engine.events import ContentDelta, Done, ReasoningDelta, TokenLogprob, ToolCall, ToolCallDelta
from ..engine.params import R1_TEMPERATURE, R1_TOP_P
from ..engine.stream import Stream
from ..engine.template import ChatTemplate
from ..errors import ModelNotFound, R1Error, UsageError
from ..gguf_meta import ArrayInfo, GGUFInfo, read_gguf
from ..request import submit
from ..request.prepare import check_generation
from ..resolve import installed_matches
from .duration import parse_duration
from .errors import client_message
from .manager import Entry, model_bytes
from .ollama_schemas import GenerateBase, GenerateRequest, NamedRequest, OllamaChatRequest
from .openai_reply import logprob_entries
from .pull import Pull, pull_target
from .resolve import available_models, capabilities_of
from .state import ServerState, get_state
from .tolerance import check_fields
from .turn import ClosingResponse, Turn, TurnResponse, acquire, cancel_on_disconnect, check_declared, start_turn

log = logging.getLogger("r1local.server")
FOREVER = "2318-01-01T00:00:00Z"  # what Ollama reports for a model kept loaded indefinitely
NDJSON = "application/x-ndjson"


def now_iso(ts: float | None = None) -> str:
    moment = datetime.fromtimestamp(ts if ts is not None else time.time(), tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def details(info: GGUFInfo) -> dict:
    billions = info.parameter_count / 1e9
    return {
        "parent_model": "",
        "format": "gguf",
        "family": info.architecture,
        "families": [info.architecture],
        "parameter_size": f"{billions:.1f}B" if billions >= 0.1 else f"{info.parameter_count / 1e6:.0f}M",
        "quantization_level": info.file_type,
    }


def details_of(path: Path) -> dict:
    """details() of a GGUF, or the little an OpenVINO IR folder says about itself."""
    if path.is_dir() or path.suffix == ".xml":
        return {
            "parent_model": "",
            "format": "openvino",
            "family": "",
            "families": [],
            "parameter_size": "",
            "quantization_level": "",
        }
    return details(read_gguf(path, require_complete=False))


def keep_alive_of(body: GenerateBase, state: ServerState) -> float | None:
    """Ollama semantics: each request sets the model's keep-alive; unset means the server default."""
    return state.settings.keep_alive_s if body.keep_alive is None else parse_duration(body.keep_alive)


def ollama_arguments(arguments: str) -> Any:
    """Ollama's clients want a call's arguments as an object."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def router() -> APIRouter:
    api = APIRouter()

    @api.get("/api/version")
    async def version() -> dict:
        return {"version": __version__}

    @api.get("/api/tags")
    async def tags(request: Request) -> dict:
        models = []
        for name, path in available_models(get_state(request).manager).items():
            try:
                model_details = details_of(path)
            except R1Error as error:  # one damaged file must not hide the others
                log.warning("skipping %s in /api/tags: %s", path, error)
                continue
            models.append(
                {
                    "name": name,
                    "model": name,
                    "modified_at": now_iso(path.stat().st_mtime),
                    "size": model_bytes(path),
                    "digest": store.file_digest(path),
                    "details": model_details,
                }
            )
        for name in await get_state(request).manager.upstream_models():
            models.append(
                {
                    "name": name,
                    "model": name,
                    "modified_at": now_iso(0),
                    "size": 0,
                    "digest": hashlib.sha256(name.encode()).hexdigest(),
                    "details": {
                        "parent_model": "",
                        "format": "upstream",
                        "family": "",
                        "families": [],
                        "parameter_size": "",
                        "quantization_level": "",
                    },
                }
            )
        return {"models": models}

    @api.get("/api/ps")
    async def ps(request: Request) -> dict:
        return {"models": [_running(entry) for entry in get_state(request).manager.loaded()]}

    @api.post("/api/show")
    async def show(body: NamedRequest, request: Request) -> dict:
        state = get_state(request)
        check_fields(body, state.settings)
        path = state.manager.path_of(body.model_name)
        info = await asyncio.to_thread(read_gguf, path)  # a copy cut short is an error, not a model
        template = ChatTemplate(info.chat_template)
        capabilities = capabilities_of(body.model_name, path, state.manager, info)
        model_info = {
            k: v
            for k, v in info.metadata.items()
            if not isinstance(v, (ArrayInfo, list)) and k != "tokenizer.chat_template"
        }
        # as Ollama adds them: the counts GGUF keeps in arrays and tensor shapes
        model_info |= {
            "general.parameter_count": info.parameter_count,
            f"{info.architecture}.vocab_size": info.vocab_size,
        }
        loaded = next((entry for entry in state.manager.loaded() if entry.model.path == path), None)
        if loaded:  # the context this server gives each request, not the one the model was trained on
            model_info[f"{info.architecture}.context_length"] = loaded.model.n_ctx
        shown: dict[str, Any] = {
            "modelfile": f"FROM {path.name}\n",
            "template": info.chat_template or "",
            "parameters": f"temperature {R1_TEMPERATURE}\ntop_p {R1_TOP_P}" if template.is_r1 else "",
            "details": details(info),
            "model_info": model_info,
            "capabilities": capabilities.ollama(),
            "modified_at": now_iso(path.stat().st_mtime),
        }
        if preset := presets.find(body.model_name):  # its own system prompt and parameters over its base's
            shown.update(
                modelfile=preset.modelfile(),
                system=preset.system or "",
                parameters=preset.parameters_text() or shown["parameters"],
                messages=preset.messages,
                template=preset.template or shown["template"],
            )
            shown["details"]["parent_model"] = preset.base
        return shown

    @api.post("/api/pull")
    async def pull(body: NamedRequest, request: Request):
        check_fields(body, get_state(request).settings)
        job = get_state(request).pulls.start(await asyncio.to_thread(pull_target, body.model_name))
        events = _while_client_waits(job, request)
        if body.stream:
            return ClosingResponse(_ndjson_lines(events), job.cancel, NDJSON)
        async for event in events:
            last = event
        return last

    @api.delete("/api/delete")
    async def delete(body: NamedRequest, request: Request) -> Response:
        """Remove one downloaded model (unloaded first); a name that picks several is refused."""
        state = get_state(request)
        check_fields(body, state.settings)
        name = body.model_name
        if presets.remove(name):  # a preset goes alone; its base model stays
            return Response(status_code=200)
        matches = await asyncio.to_thread(installed_matches, state.manager.address(name))
        if not matches:
            raise ModelNotFound(f"model '{name}' not found", "See GET /api/tags for the downloaded models.")
        if len(matches) > 1:
            raise UsageError(
                f"{name} names {len(matches)} downloaded models: {', '.join(m.name for m in matches)}.",
                "Name one of them.",
                param="model",
            )
        state.manager.unload(name)
        freed = await asyncio.to_thread(store.remove, matches[0])
        log.info("deleted %s (%.2f GiB freed)", matches[0].name, freed / 2**30)
        return Response(status_code=200)

    @api.post("/api/chat")
    async def chat(body: OllamaChatRequest, request: Request):
        state = get_state(request)
        check_fields(body, state.settings)
        if not body.messages:
            return await _load_or_unload(body, request)
        return await _answer(body, request, "message")

    @api.post("/api/generate")
    async def generate(body: GenerateRequest, request: Request):
        state = get_state(request)
        check_fields(body, state.settings)
        if not body.prompt:
            return await _load_or_unload(body, request)
        if body.raw:
            return await _generate(body, request, "response", partial(_complete, body))
        return await _answer(body, request, "response")

    return api


async def _answer(body: OllamaChatRequest | GenerateRequest, request: Request, field: str):
    """A chat (or a templated generate): refused before the load when the engine lacks what it asks."""
    chat = get_state(request).settings.apply(presets.with_preset(body.model, body.chat()))
    await check_declared(request, body.model, chat)
    return await _generate(body, request, field, partial(submit, chat))


def _complete(body: GenerateRequest, model: Engine) -> Stream:
    """A raw prompt: no template, no chat policy (in a worker thread: a grammar takes time)."""
    params = body.sampling(model.capabilities.context_length)
    check_generation(params, model)
    return model.complete(body.prompt or "", params=params)


def _running(entry: Entry) -> dict:
    expires = entry.expires_at
    if entry.active and entry.keep_alive_s is not None:
        expires = time.time() + entry.keep_alive_s
    return {
        "name": entry.name,
        "model": entry.name,
        "size": entry.size_bytes,
        "size_vram": entry.vram_bytes,
        "digest": store.file_digest(entry.model.path),
        "details": details_of(entry.model.path),
        "expires_at": FOREVER if expires is None else now_iso(expires),
        **entry.model.describe(),
    }


async def _load_or_unload(body: GenerateBase, request: Request) -> dict:
    """Ollama's empty request: load the model (or, with keep_alive 0, unload it) and say which."""
    state = get_state(request)
    keep_alive = keep_alive_of(body, state)
    field = "message" if isinstance(body, OllamaChatRequest) else "response"
    empty = {"role": "assistant", "content": ""} if field == "message" else ""
    if keep_alive == 0:
        state.manager.unload(body.model)
        reason = "unload"
    else:
        (await acquire(request, body.model)).release(keep_alive)
        reason = "load"
    return {"model": body.model, "created_at": now_iso(), field: empty, "done": True, "done_reason": reason}


async def _generate(body: GenerateBase, request: Request, field: str, submit):
    state = get_state(request)
    turn = await start_turn(request, body.model, submit, api="ollama", keep_alive_s=keep_alive_of(body, state))
    if body.stream:
        return TurnResponse(_chunks(turn, request, field), turn, NDJSON)
    result = await turn.result(request)
    if result.done is None or result.done.finish_reason == "error":
        reason = result.done.error if result.done else "no result"
        return JSONResponse({"error": f"Generation failed: {reason}."}, status_code=500)
    piece = _piece(field, result.content, result.reasoning, result.tool_calls)
    if body.logprobs:
        piece["logprobs"] = logprob_entries(result.logprobs)
    return JSONResponse(_final(turn, result.done, field, piece), headers=turn.headers())


def _piece(field: str, content: str, thinking: str | None, calls: Sequence[ToolCall] = ()) -> dict:
    if field == "message":
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            message["thinking"] = thinking
        if calls:  # Ollama's shape: arguments as an object
            message["tool_calls"] = [
                {"function": {"index": call.index, "name": call.name, "arguments": ollama_arguments(call.arguments)}}
                for call in calls
            ]
        return {"message": message}
    return {"response": content, **({"thinking": thinking} if thinking else {})}


def _final(turn: Turn, done: Done, field: str, piece: dict) -> dict:
    """Durations as Ollama reports them; the parts never add up to more than the total."""
    t = done.timings
    ns = lambda seconds: int(seconds * 1e9)  # noqa: E731
    total_s = max(time.monotonic() - turn.started, turn.load_s + t.queued_s + t.prompt_s + t.generation_s)
    return {
        "model": turn.model_name,
        "created_at": now_iso(),
        **piece,
        "done": True,
        "done_reason": "stop" if done.finish_reason == "cancelled" else done.finish_reason,
        "total_duration": ns(total_s),
        "load_duration": ns(turn.load_s),
        "prompt_eval_count": done.usage.prompt_tokens,
        "prompt_eval_duration": ns(t.prompt_s),
        "eval_count": done.usage.completion_tokens,
        "eval_duration": ns(t.generation_s),
        **({"trimmed_messages": turn.trimmed_messages} if turn.trimmed_messages else {}),
    }


async def _chunks(turn: Turn, request: Request, field: str) -> AsyncIterator[str]:
    async for event in turn.events(request):
        if isinstance(event, ToolCallDelta):  # Ollama sends each call whole, once it is complete
            continue
        if isinstance(event, ContentDelta):
            piece = _piece(field, event.text, None)
        elif isinstance(event, ReasoningDelta):
            piece = _piece(field, "", event.text)
        elif isinstance(event, ToolCall):
            piece = _piece(field, "", None, [event])
        elif isinstance(event, TokenLogprob):  # asked for: each token's, as it comes
            piece = {**_piece(field, "", None), "logprobs": logprob_entries([event])}
        elif event.finish_reason == "error":
            piece = {"error": f"Generation failed: {event.error or 'engine error'}."}
        else:
            yield json.dumps(_final(turn, event, field, _piece(field, "", None))) + "\n"
            continue
        if "error" in piece:
            yield json.dumps(piece) + "\n"
            break
        yield json.dumps({"model": turn.model_name, "created_at": now_iso(), **piece, "done": False}) + "\n"


async def _while_client_waits(job: Pull, request: Request) -> AsyncIterator[dict]:
    """The pull's events; the download stops as soon as its client is gone, even between events."""
    watcher = asyncio.create_task(cancel_on_disconnect(request, job))
    try:
        async for event in job.events():
            yield event
    finally:
        watcher.cancel()


async def _ndjson_lines(events: AsyncIterator[dict]) -> AsyncIterator[str]:
    try:
        async for event in events:
            yield json.dumps(event) + "\n"
    except R1Error as error:  # headers are gone: the error becomes the last line
        yield json.dumps({"error": client_message(error)}) + "\n"
