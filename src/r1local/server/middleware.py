"""ASGI middleware: the API key, the request size limit, JSON bodies whatever their declared type.
Pure ASGI rather than BaseHTTPMiddleware so streamed responses pass through untouched."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidAPIKey, RequestTooLarge
from .errors import error_response

OPEN_PATHS = ("/health",)  # probes must work without the key


class APIKeyAuth:
    """Every route but /health needs `Authorization: Bearer <key>` (OpenAI and Ollama clients both send it)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["method"] == "OPTIONS":
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, given = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.expected):
            return await self.app(scope, receive, send)
        problem = "Missing API key." if not header else "Invalid API key."
        error = InvalidAPIKey(problem, "Send the server's key as 'Authorization: Bearer <key>'.")
        response = error_response(scope["path"], error)
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413, whether declared by Content-Length or streamed
    in chunks: the body is read (up to the limit) before the app sees it, then replayed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            return await self._refuse(scope, receive, send)
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await self._refuse(scope, receive, send)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = RequestTooLarge(
            f"The request body is larger than the server's limit of {self.max_bytes} bytes.",
            "Send a shorter request.",
        )
        await error_response(scope["path"], error)(scope, receive, send)


class JSONBodies:
    """Read every POST body as JSON, as Ollama and OpenAI do: `curl -d '{...}'` sends it as a form."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)
