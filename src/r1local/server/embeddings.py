"""Embedding routes: OpenAI's /v1/embeddings, llama-server's own /embedding and /embeddings,
Ollama's /api/embed and its older /api/embeddings. Inputs are read as llama-server reads them
(token ids and text mixed, prompt objects). The work runs in a worker thread on the model's
embedding context, never on the event loop or the scheduler's step."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import Field

from ..errors import UsageError
from .duration import parse_duration
from .llama_prompts import Prompt, split
from .manager import KEEP
from .resolve import lenient_name
from .schema_base import Strict
from .state import ServerState, get_state
from .tolerance import check_fields
from .turn import acquire

MAX_INPUTS = 2048  # OpenAI's own limit per request
MAX_TOKENS = 1 << 20  # of one input given as token ids
MAX_DIMENSIONS = 1 << 16
# llama-server's prompt objects: {"prompt_string": text} or {"content": [{"type": "text", "text": ...}, ...]}
PROMPT_OBJECT = dict[str, object]
INPUT = (
    str
    | PROMPT_OBJECT
    | Annotated[
        list[int | str | Annotated[list[int | str], Field(max_length=MAX_TOKENS)] | PROMPT_OBJECT],
        Field(max_length=MAX_TOKENS),
    ]
)


class OpenAIEmbeddingRequest(Strict):
    model: str | None = None  # none, or a name not served here: the default model, as llama-server answers
    input: INPUT
    encoding_format: str = "float"
    dimensions: int | None = Field(None, ge=1, le=MAX_DIMENSIONS)
    user: str | None = None
    truncate: bool = False  # beyond OpenAI, as Ollama's /api/embed: cut an input to the context


class LlamaEmbeddingRequest(Strict):
    """llama-server's own /embedding and /embeddings: `input`, or `content` as its older clients send."""

    model: str | None = None
    input: INPUT | None = None
    content: INPUT | None = None
    embd_normalize: int | None = None  # llama-server's normalisation choice; vectors here are L2-normalised


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


def shorten(vector: list[float], dimensions: int | None, n_embd: int) -> list[float]:
    """The first `dimensions` values, normalised again (Matryoshka models are trained for this)."""
    if dimensions is None or dimensions == n_embd:
        return vector
    if dimensions > n_embd:
        raise UsageError(f"dimensions {dimensions} is more than this model's {n_embd}.", param="dimensions")
    head = vector[:dimensions]
    norm = sum(x * x for x in head) ** 0.5
    return [x / norm for x in head] if norm > 0 else head


async def embed_rows(
    request: Request,
    model: str,
    inputs: Sequence[Prompt],
    *,
    truncate: bool,
    per_token: bool = False,
    keep_alive_s: float | None | object = KEEP,
) -> tuple[list[list[list[float]]], int, float, float]:
    """Each input's vectors (see Engine.embed_rows), tokens used, load seconds and total seconds.
    Routes that answer one vector per input refuse a server pooling none, as llama-server's do."""
    if not inputs:
        raise UsageError("input is empty.", param="input")
    pooling = get_state(request).settings.pooling
    if pooling == "none" and not per_token:
        raise UsageError(
            "This server was started with --pooling none (a vector per token), which is not OpenAI-compatible; "
            "use /embeddings, or serve with another --pooling.",
            param="input",
        )
    started = time.monotonic()
    lease = await acquire(request, model)  # a client that leaves during the load stops it
    load_s = time.monotonic() - started
    try:
        rows, tokens = await lease.work(lease.model.embed_rows, inputs, truncate=truncate, pooling=pooling)
    finally:
        lease.release(keep_alive_s)
    return rows, tokens, load_s, time.monotonic() - started


async def embed(
    request: Request,
    model: str,
    inputs: Sequence[Prompt],
    *,
    truncate: bool,
    dimensions: int | None,
    keep_alive_s: float | None | object = KEEP,
) -> tuple[list[list[float]], int, float, float]:
    """Vectors, tokens used, load seconds and total seconds."""
    rows, tokens, load_s, total_s = await embed_rows(
        request, model, inputs, truncate=truncate, keep_alive_s=keep_alive_s
    )
    vectors = [vectors[0] for vectors in rows]
    n_embd = len(vectors[0]) if vectors else 0
    return [shorten(v, dimensions, n_embd) for v in vectors], tokens, load_s, total_s


def _keep_alive(value: str | float | None, state: ServerState) -> float | None:
    return state.settings.keep_alive_s if value is None else parse_duration(value)


def router() -> APIRouter:
    api = APIRouter()

    @api.post("/v1/embeddings")
    async def openai_embeddings(body: OpenAIEmbeddingRequest, request: Request) -> dict:
        state = get_state(request)
        check_fields(body, state.settings)
        if body.encoding_format not in ("float", "base64"):
            raise UsageError("encoding_format must be float or base64.", param="encoding_format")
        inputs = split(body.input, param="input", limit=MAX_INPUTS, content_parts=True)
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

    @api.post("/embedding", include_in_schema=False)  # llama-server's own answer: a list of {index, embedding}
    @api.post("/embeddings", include_in_schema=False)
    async def llama_embeddings(body: LlamaEmbeddingRequest, request: Request) -> list[dict]:
        state = get_state(request)
        check_fields(body, state.settings)
        given = body.input if body.input is not None else body.content
        if given is None:
            raise UsageError("send the text to embed in input (or content).", param="input")
        model = lenient_name(state.manager, body.model)
        inputs = split(given, param="input", limit=MAX_INPUTS, content_parts=True)
        rows, _, _, _ = await embed_rows(request, model, inputs, truncate=False, per_token=True)
        return [{"index": i, "embedding": vectors} for i, vectors in enumerate(rows)]

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
