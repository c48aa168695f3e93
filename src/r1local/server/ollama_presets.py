"""Ollama's /api/create and /api/copy: presets (presets.py) made the way the ollama client makes
models, from an existing model with a system prompt, parameters, a template and messages (or the
Modelfile older clients send), and copies of them under another name."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import Field

from .. import presets
from ..errors import UsageError
from .schema_base import MAX_MESSAGES, Strict
from .state import get_state
from .tolerance import check_fields

NDJSON = "application/x-ndjson"


class CreateRequest(Strict):
    model: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=200)  # older clients' `model`
    from_: str | None = Field(None, alias="from", max_length=1000)
    system: str | None = None
    template: str | None = None
    parameters: dict[str, Any] | None = Field(None, max_length=64)
    messages: list[dict[str, Any]] | None = Field(None, max_length=MAX_MESSAGES)
    modelfile: str | None = Field(None, max_length=1 << 20)  # older clients send the Modelfile itself
    stream: bool = True
    quantize: str | None = None

    def fields(self) -> dict:
        """What create() takes, from the fields or from a Modelfile (the fields win)."""
        name = self.model or self.name
        if not name:
            raise UsageError("model is required.", param="model")
        fields = presets.parse_modelfile(self.modelfile) if self.modelfile else {}
        given = {
            "base": self.from_,
            "system": self.system,
            "template": self.template,
            "parameters": self.parameters,
            "messages": self.messages,
        }
        fields.update({key: value for key, value in given.items() if value is not None})
        if not fields.get("base"):
            raise UsageError("Name the model to start from with `from`.", param="from")
        if self.quantize:
            raise UsageError(
                "Presets keep their base model's quantisation; pull another quantisation instead.", param="quantize"
            )
        return {"name": name, **fields}


class CopyRequest(Strict):
    source: str = Field(min_length=1, max_length=1000)
    destination: str = Field(min_length=1, max_length=200)


def router() -> APIRouter:
    api = APIRouter()

    @api.post("/api/create")
    async def create(body: CreateRequest, request: Request):
        state = get_state(request)
        check_fields(body, state.settings)
        fields = body.fields()
        name = fields["name"]
        await asyncio.to_thread(state.manager.path_of, fields["base"])  # 404 unless the base model is here
        draft = (fields.get("parameters") or {}).get("draft")
        if isinstance(draft, str) and draft != "auto":  # a model here, by name: never a path it was not started with
            await asyncio.to_thread(state.manager.path_of, draft)
        await asyncio.to_thread(lambda: presets.create(fields.pop("name"), fields.pop("base"), **fields))
        if not body.stream:
            return {"status": "success"}
        lines = [{"status": f"creating preset {presets.canonical(name)}"}, {"status": "success"}]
        return StreamingResponse(iter([json.dumps(line) + "\n" for line in lines]), media_type=NDJSON)

    @api.post("/api/copy")
    async def copy(body: CopyRequest, request: Request) -> Response:
        state = get_state(request)
        check_fields(body, state.settings)
        await asyncio.to_thread(state.manager.path_of, body.source)  # 404 unless it names a model here
        await asyncio.to_thread(presets.copy, body.source, body.destination)
        return Response(status_code=200)

    return api
