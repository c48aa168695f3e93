"""ASGI middleware: the Host and Origin checks that keep web pages out, the API key, the request
size limit, JSON bodies. Pure ASGI rather than BaseHTTPMiddleware so streamed responses pass through
untouched."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ForbiddenRequest, InvalidAPIKey, RequestTooLarge, UnsupportedMediaType, UsageError
from .errors import error_response
from .origins import OriginPolicy
from .webui import PUBLIC_PREFIX

OPEN_PATHS = ("/health", "/")  # probes and the chat page (which then asks for the key) need no key


class APIKeyAuth:
    """Every route but /health needs the key: `Authorization: Bearer <key>` (OpenAI and Ollama clients
    send it) or `X-Api-Key: <key>` (Anthropic's clients, and llama-server accepts it too)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in OPEN_PATHS
            or scope["path"].startswith(PUBLIC_PREFIX)
            or scope["method"] == "OPTIONS"
        ):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        header = headers.get(b"authorization", b"")
        scheme, _, bearer = header.partition(b" ")
        given = [
            key.strip()
            for key in (bearer if scheme.lower() == b"bearer" else b"", headers.get(b"x-api-key", b""))
            if key.strip()
        ]
        if any([hmac.compare_digest(key, self.expected) for key in given]):  # a list: both compared, always
            return await self.app(scope, receive, send)
        problem = "Missing API key." if not given else "Invalid API key."
        error = InvalidAPIKey(problem, "Send the server's key as 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'.")
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


def _host_of(authority: str) -> str | None:
    """The lower-case host name of a Host header or an Origin's authority ('[::1]:80' -> '::1')."""
    try:
        return urlsplit("//" + authority.strip()).hostname
    except ValueError:
        return None


class TrustedHosts:
    """Answer only requests addressed by a name this server knows: an IP address, localhost and
    *.localhost, or a name the operator allowed (`*` allows any). A page that rebinds its own DNS
    name to 127.0.0.1 reaches the server under that name, so its Host header gives it away."""

    def __init__(self, app: ASGIApp, names: Iterable[str]) -> None:
        self.app = app
        self.names = {name.lower().rstrip(".") for name in names}

    def allowed(self, authority: str) -> bool:
        host = _host_of(authority)
        if host is None:
            return False
        try:
            ipaddress.ip_address(host)
            return True  # an address cannot be rebound
        except ValueError:
            pass
        host = host.rstrip(".")
        return "*" in self.names or host in self.names or host == "localhost" or host.endswith(".localhost")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host")
            if host is not None and not self.allowed(host.decode("latin-1")):
                error = ForbiddenRequest(
                    f"This server does not answer to the host name {host.decode('latin-1')[:100]!r}.",
                    "Use 127.0.0.1 or localhost, or start the server with --allowed-host NAME.",
                )
                return await error_response(scope["path"], error)(scope, receive, send)
        await self.app(scope, receive, send)


_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class CrossSiteGuard:
    """Refuse what a page on another site can make a browser send: any request whose Origin is
    neither this server's own nor an allowed one (origins.py), and a browser's body not declared as
    JSON (text/plain and form posts need no CORS preflight). Clients that are not browsers send no
    Origin; their bodies are read as JSON whatever the Content-Type says, as Ollama reads `curl -d`."""

    def __init__(self, app: ASGIApp, origins: OriginPolicy) -> None:
        self.app = app
        self.origins = origins

    def _foreign(self, origin: str, host: str) -> bool:
        if self.origins.allows(origin):
            return False
        return origin == "null" or urlsplit(origin.lower()).netloc != host.lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if origin is not None and self._foreign(origin, headers.get("host", "")):
            error: UsageError = ForbiddenRequest(
                f"Requests from the web page origin {origin[:100]!r} are not allowed.",
                "Start the server with --cors-origin ORIGIN to allow that site.",
            )
            return await error_response(scope["path"], error)(scope, receive, send)
        if scope["method"] in _BODY_METHODS:
            declared = headers.get("content-type", "").split(";")[0].strip().lower()
            is_json = declared in ("", "application/json") or declared.endswith("+json")
            from_browser = origin is not None or "sec-fetch-mode" in headers
            if from_browser and not is_json:
                error = UnsupportedMediaType(
                    f"The request body is sent as {declared!r}; this API reads JSON only.",
                    "Send it with 'Content-Type: application/json'.",
                )
                return await error_response(scope["path"], error)(scope, receive, send)
            if declared != "application/json":
                kept = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                scope = {**scope, "headers": [*kept, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)
