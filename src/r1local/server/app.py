"""The app factory: one FastAPI app per call, owning its models, metrics and settings
(no module globals, so tests and embedders can run several side by side)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from .. import __version__, trust
from ..hardware import Hardware
from ..rpc import worker_status
from . import (
    anthropic,
    embeddings,
    errors,
    llamacpp_routes,
    ollama,
    ollama_presets,
    openai,
    openapi,
    responses,
    webui,
)
from .manager import ModelManager
from .metrics import CONTENT_TYPE, CountErrors, Metrics
from .middleware import APIKeyAuth, BodyLimit, CrossSiteGuard, TrustedHosts
from .origins import OriginPolicy
from .pull import Pulls
from .settings import ServerSettings
from .state import ServerState


def create_app(settings: ServerSettings, *, hardware: Callable[[], Hardware] | None = None) -> FastAPI:
    """`hardware` replaces the live machine reading the memory check uses (tests pass a small one)."""
    manager = ModelManager(settings, hardware=hardware) if hardware else ModelManager(settings)
    state = ServerState(settings, manager, Metrics(manager), Pulls())
    secret = trust.server_secret()  # proves to this user's CLI that this is its own server

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # command-line models load in the background: /health answers 503 until they are in
        starting = asyncio.create_task(manager.start())
        try:
            yield
        finally:
            state.pulls.stop()
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            await manager.stop()

    app = FastAPI(title="r1local", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.r1local = state
    errors.install(app, settings.retry_after_s)
    app.include_router(openai.router())
    app.include_router(ollama.router())
    app.include_router(ollama_presets.router())
    app.include_router(embeddings.router())
    app.include_router(llamacpp_routes.router())
    app.include_router(anthropic.router())
    app.include_router(responses.router())
    openapi.install(app)

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        """200 once the command-line models are loaded; 503 while they load or when one failed; with
        a challenge, the proof that this is the asking user's own server (trust.py)."""
        status = "error" if manager.failed else "ok" if manager.ready else "loading"
        body = {"status": status, "loading": manager.loading, "models": [entry.name for entry in manager.loaded()]}
        if manager.failed:
            body["failed"] = manager.failed
        if settings.rpc:
            models = [entry.model for entry in manager.loaded()]
            body["workers"] = await asyncio.to_thread(worker_status, settings.rpc, models)
        port = (request.scope.get("server") or ("", 0))[1]  # the port this connection reached
        proof = trust.answer(secret, request.headers.get(trust.CHALLENGE_HEADER), port)
        return JSONResponse(
            body, status_code=200 if status == "ok" else 503, headers={trust.PROOF_HEADER: proof} if proof else None
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    webui.install(app, enabled=settings.web_ui)

    # outermost last: CORS answers preflights and decorates every response, errors included;
    # the Host check comes before everything, so a rebinding page learns nothing at all
    origins = OriginPolicy(settings.cors_origins)
    app.add_middleware(CrossSiteGuard, origins=origins)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.api_key:
        app.add_middleware(APIKeyAuth, api_key=settings.api_key)
    app.add_middleware(CountErrors, metrics=state.metrics)
    app.add_middleware(
        CORSMiddleware,
        allow_origin_regex=origins.regex,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "X-Api-Key",
            "Anthropic-Version",
            "Anthropic-Beta",
            "Anthropic-Dangerous-Direct-Browser-Access",
        ],
    )
    app.add_middleware(TrustedHosts, names=(*settings.allowed_hosts, settings.host, socket.gethostname()))
    return app
