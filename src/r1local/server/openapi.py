"""The served OpenAPI document, made to say what the server sends: FastAPI documents a 422
validation body that this server never sends (bad input is a 400 in the dialect's error shape),
and knows nothing of the statuses the middleware and the engine send, nor of streamed media types."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .errors import is_anthropic, is_ollama
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .middleware import OPEN_PATHS

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"

DESCRIPTIONS = {
    400: "Invalid request: malformed JSON, a wrong type, a value out of its bounds, an unknown parameter under --strict",
    401: "Missing or wrong API key (when the server has one)",
    403: "A host name the server does not answer to, or a web page origin it does not allow",
    404: "Unknown model (or not downloaded) or route",
    413: "Request body larger than --max-body",
    415: "Body not sent as application/json",
    422: "The model file cannot be used (damaged, cut short, unsupported)",
    502: "The Hugging Face Hub or its mirror failed",
    503: "Every slot and queue place taken, too many downloads, loading, or offline (see Retry-After)",
    507: "Not enough memory to load the model, or no room in the model cache",
}
GENERATION = (404, 422, 503, 507)
ERRORS = {  # beyond the ones every route (401, 403) and every body (400, 413, 415) can get
    ("post", "/v1/chat/completions"): GENERATION,
    ("post", "/v1/completions"): GENERATION,
    ("post", "/api/chat"): GENERATION,
    ("post", "/api/generate"): GENERATION,
    ("post", "/api/show"): (404, 422),
    ("post", "/api/pull"): (404, 502, 503, 507),
    ("post", "/v1/embeddings"): GENERATION,
    ("post", "/api/embed"): GENERATION,
    ("post", "/api/embeddings"): GENERATION,
    ("post", "/completion"): GENERATION,
    ("post", "/tokenize"): GENERATION,
    ("post", "/detokenize"): GENERATION,
    ("post", "/apply-template"): GENERATION,
    ("get", "/v1/models/{model_id}"): (404, 422),
    ("post", "/v1/responses"): GENERATION,
    ("get", "/v1/responses/{response_id}"): (404,),
    ("delete", "/v1/responses/{response_id}"): (404,),
    ("post", "/v1/messages"): GENERATION,
    ("post", "/v1/messages/count_tokens"): (404, 422, 503, 507),
    ("post", "/api/create"): (404, 422),
    ("post", "/api/copy"): (404, 422),
    ("get", "/health"): (503,),
}
STREAMED = {
    "/v1/chat/completions": SSE,
    "/v1/completions": SSE,
    "/completion": SSE,
    "/api/chat": NDJSON,
    "/api/generate": NDJSON,
    "/api/pull": NDJSON,
    "/v1/responses": SSE,
    "/v1/messages": SSE,
    "/api/create": NDJSON,
}
TEXT = {"/": "text/plain; charset=utf-8", "/metrics": METRICS_TYPE}

OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
OLLAMA_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            app.openapi_schema = conform(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def conform(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(OpenAIError=OPENAI_ERROR, OllamaError=OLLAMA_ERROR, AnthropicError=ANTHROPIC_ERROR)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _conform(path, method, operation)
    return document


def _conform(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    statuses = {403, *(() if path in OPEN_PATHS else (401,)), *ERRORS.get((method, path), ())}
    if "requestBody" in operation:
        statuses |= {400, 413, 415}
    kind = "OllamaError" if is_ollama(path) else "AnthropicError" if is_anthropic(path) else "OpenAIError"
    error = {"$ref": f"#/components/schemas/{kind}"}
    for status in sorted(statuses):
        response: dict[str, Any] = {
            "description": DESCRIPTIONS[status],
            "content": {"application/json": {"schema": error}},
        }
        if status == 503:
            response["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait (when busy)"}
            }
        responses[str(status)] = response
    if path == "/health":  # 503 while loading or after a failed load carries the same body as 200
        responses["503"]["content"] = responses["200"]["content"]
    ok = responses.get("200", {})
    if path in TEXT:
        ok["content"] = {TEXT[path]: {"schema": {"type": "string"}}}
    elif path in STREAMED:
        ok.setdefault("content", {})[STREAMED[path]] = {"schema": {"type": "string"}}
