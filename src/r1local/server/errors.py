"""Every failure becomes a JSON error in the caller's dialect: OpenAI's
{"error": {"message", "type", "param", "code"}} on /v1, Ollama's {"error": "..."} on /api.
Statuses come from the error types' own attributes, never from exception text."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import Overloaded, R1Error, UsageError

log = logging.getLogger("r1local.server")

_STATUS_TYPES = {401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error"}


def is_ollama(path: str) -> bool:
    return path.startswith("/api/")


def is_anthropic(path: str) -> bool:
    return path.startswith("/v1/messages")


# Anthropic's error types by status (docs.anthropic.com/en/api/errors)
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


# An absolute path in a message (/home/me/.cache/.../model.gguf, C:\\Users\\...): only its last
# part goes to clients, who need not learn the server's user name and folders. URLs keep theirs.
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])(?:[A-Za-z]:)?[\\/](?:[^\s\\/:'\"]+[\\/])+(?=[^\s\\/'\"])")


def client_message(error: R1Error) -> str:
    return _ABSOLUTE_PATH.sub("", str(error))


def error_payload(
    path: str, message: str, *, type_: str, code: str | None, param: str | None, status: int = 500
) -> dict:
    if is_ollama(path):
        return {"error": message}
    if is_anthropic(path):
        kind = _ANTHROPIC_TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(path: str, error: R1Error, retry_after_s: int = 1) -> JSONResponse:
    headers = {"Retry-After": str(retry_after_s)} if isinstance(error, Overloaded) else None
    body = error_payload(
        path,
        client_message(error),
        type_=error.error_type,
        code=error.code,
        param=error.param,
        status=error.http_status,
    )
    return JSONResponse(body, status_code=error.http_status, headers=headers)


_NOT_AN_OBJECT = {"missing", "model_type", "model_attributes_type", "dict_type"}  # pydantic's kinds of it
BODY_NOT_AN_OBJECT = "The request body is empty or not a JSON object; send a JSON object with the request's parameters."


def validation_error(exc: RequestValidationError) -> UsageError:
    """One readable sentence from pydantic's error list; `param` names the first bad field."""
    problems, first_param = [], None
    for item in exc.errors()[:3]:
        loc = [str(part) for part in item.get("loc", ()) if part != "body"]
        param = ".".join(loc) or None
        first_param = first_param or param
        kind, ctx = item.get("type"), item.get("ctx", {})
        if kind == "json_invalid":
            first_param = None  # the location is a character offset, not a parameter
            problems.append(f"The request body is not valid JSON ({ctx.get('error', 'parse error')}).")
        elif kind == "extra_forbidden":
            problems.append(f"Unknown parameter {param!r}.")
        elif param is None and kind in _NOT_AN_OBJECT:  # the body itself: empty, `null`, a list...
            problems.append(BODY_NOT_AN_OBJECT)
        elif kind == "missing":
            problems.append(f"Missing required parameter {param!r}.")
        elif kind == "value_error":  # our validators' own sentence, without pydantic's prefix
            problems.append(f"{param}: {ctx.get('error')}." if param else f"{ctx.get('error')}.")
        else:
            problems.append(f"{param}: {item.get('msg')}." if param else f"{item.get('msg')}.")
    return UsageError(" ".join(problems) or "Invalid request.", param=first_param)


def install(app: FastAPI, retry_after_s: int) -> None:
    @app.exception_handler(R1Error)
    async def on_r1_error(request: Request, exc: R1Error) -> JSONResponse:
        return error_response(request.url.path, exc, retry_after_s)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request.url.path, validation_error(exc))

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404:
            message = f"No route {request.method} {request.url.path}."
        kind = _STATUS_TYPES.get(exc.status_code, "invalid_request_error")
        body = error_payload(request.url.path, message, type_=kind, code=None, param=None, status=exc.status_code)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        body = error_payload(
            request.url.path,
            f"Internal error: {type(exc).__name__}.",
            type_="server_error",
            code="internal_error",
            param=None,
        )
        return JSONResponse(body, status_code=500)
