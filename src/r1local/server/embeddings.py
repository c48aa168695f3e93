"""Embedding routes: OpenAI's /v1/embeddings, Ollama's /api/embed and its older /api/embeddings.
The work runs in a worker thread on the model's embedding context, never on the event loop or
the scheduler's step."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Sequence
from typing import Annotated, cast

from fastapi import APIRouter, Request
from pydantic import Field

from ..errors import UsageError
from .duration import parse_duration
from .manager import KEEP
from .resolve import lenient_name
from .schema_base import Strict
from .state import ServerState, get_state
from .tolerance import check_fields
from .turn import acquire

MAX_INPUTS = 2048  # OpenAI's own limit per request
MAX_TOKENS = 1 << 20  # of one input given as token ids
MAX_DIMENSIONS = 1 << 16
TOKEN_IDS = Annotated[list[int], Field(max_length=MAX_TOKENS)]
# llama-server's prompt objects: {"prompt_string": text} or {"content": [{"type": "text", "text": ...}, ...]}
PROMPT_OBJECT = dict[str, object]


class OpenAIEmbeddingRequest(Strict):
    model: str | None = None  # none, or a name not served here: the default model, as llama-server answers
    input: (
        str | TOKEN_IDS | PROMPT_OBJECT | Annotated[list[str | TOKEN_IDS | PROMPT_OBJECT], Field(max_length=MAX_INPUTS)]
    )
    encoding_format: str = "float"
    dimensions: int | None = Field(None, ge=1, le=MAX_DIMENSIONS)
    user: str | None = None
    truncate: bool = False  # beyond OpenAI, as Ollama's /api/embed: cut an input to the context


class OllamaEmbedRequest(Strict):
    model: str = Field(min_length=1)
    input: str | Annotated[list[str], Field(max_length=MAX_INPUTS)] = ""
    truncate: bool = True
    dimensions: int | None = Field(None, ge=1, le=MAX_DIMENSIONS)
    options: dict | None = None  # sampling options mean nothing here
    keep_alive: str | float | None = None


class OllamaEmbeddingsRequest(Strict):
    """The older route: one prompt, one vector."""

    model: str = Field(min_length=1)
    prompt: str = ""
    options: dict | None = None
    keep_alive: str | float | None = None


def prompt_text(prompt: PROMPT_OBJECT) -> str:
    """The text of one of llama-server's prompt objects; a model here embeds text only."""
    if isinstance(text := prompt.get("prompt_string"), str):
        return text
    parts = prompt.get("content")
    if (
        isinstance(parts, list)
        and parts
        and all(
            isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            for part in parts
        )
    ):
        return "".join(part["text"] for part in parts)
    raise UsageError("an input object takes prompt_string, or content as a list of text parts.", param="input")


def shorten(vector: list[float], dimensions: int | None, n_embd: int) -> list[float]:
    """The first `dimensions` values, normalised again (Matryoshka models are trained for this)."""
    if dimensions is None or dimensions == n_embd:
        return vector
    if dimensions > n_embd:
        raise UsageError(f"dimensions {dimensions} is more than this model's {n_embd}.", param="dimensions")
    head = vector[:dimensions]
    norm = sum(x * x for x in head) ** 0.5
    return [x / norm for x in head] if norm > 0 else head


async def embed(
    request: Request,
    model: str,
    inputs: Sequence[str | list[int]],
    *,
    truncate: bool,
    dimensions: int | None,
    keep_alive_s: float | None | object = KEEP,
) -> tuple[list[list[float]], int, float, float]:
    """Vectors, tokens used, load seconds and total seconds."""
    if not inputs:
        raise UsageError("input is empty.", param="input")
    started = time.monotonic()
    lease = await acquire(request, model)  # a client that leaves during the load stops it
    load_s = time.monotonic() - started
    try:
        vectors, tokens = await lease.work(lease.model.embed, inputs, truncate=truncate)
    finally:
        lease.release(keep_alive_s)
    n_embd = len(vectors[0]) if vectors else 0
    return [shorten(v, dimensions, n_embd) for v in vectors], tokens, load_s, time.monotonic() - started


def _keep_alive(value: str | float | None, state: ServerState) -> float | None:
    return state.settings.keep_alive_s if value is None else parse_duration(value)


def router() -> APIRouter:
    api = APIRouter()

    @api.post("/v1/embeddings")
    @api.post("/embeddings", include_in_schema=False)  # as llama-server serves it
    async def openai_embeddings(body: OpenAIEmbeddingRequest, request: Request) -> dict:
        state = get_state(request)
        check_fields(body, state.settings)
        if body.encoding_format not in ("float", "base64"):
            raise UsageError("encoding_format must be float or base64.", param="encoding_format")
        if body.input == []:
            raise UsageError("input is empty: send a text, a list of texts or token ids.", param="input")
        many = isinstance(body.input, list) and not isinstance(body.input[0], int)
        # `many`: a list of inputs; else one (a text, a prompt object or one list of token ids)
        items = cast(list[str | list[int] | PROMPT_OBJECT], body.input if many else [body.input])
        inputs = [prompt_text(x) if isinstance(x, dict) else x for x in items]
        model = lenient_name(state.manager, body.model)
        vectors, tokens, _, _ = await embed(request, model, inputs, truncate=body.truncate, dimensions=body.dimensions)

        def encoded(vector: list[float]) -> list[float] | str:
            if body.encoding_format == "float":
                return vector
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()

        return {
            "object": "list",
            "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": encoded(v)} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @api.post("/api/embed")
    async def ollama_embed(body: OllamaEmbedRequest, request: Request) -> dict:
        state = get_state(request)
        check_fields(body, state.settings)
        inputs = body.input if isinstance(body.input, list) else [body.input]
        vectors, tokens, load_s, total_s = await embed(
            request,
            body.model,
            inputs,
            truncate=body.truncate,
            dimensions=body.dimensions,
            keep_alive_s=_keep_alive(body.keep_alive, state),
        )
        return {
            "model": body.model,
            "embeddings": vectors,
            "total_duration": int(total_s * 1e9),
            "load_duration": int(load_s * 1e9),
            "prompt_eval_count": tokens,
        }

    @api.post("/api/embeddings")
    async def ollama_embeddings(body: OllamaEmbeddingsRequest, request: Request) -> dict:
        state = get_state(request)
        check_fields(body, state.settings)
        vectors, _, _, _ = await embed(
            request,
            body.model,
            [body.prompt],
            truncate=True,
            dimensions=None,
            keep_alive_s=_keep_alive(body.keep_alive, state),
        )
        return {"embedding": vectors[0]}

    return api
