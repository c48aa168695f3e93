"""The built-in chat page: static files shipped inside the package, served at / to browsers (other
clients asking / still get the one line Ollama's clients probe for) and under /ui/."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = resources.files("r1local") / "webui"
PUBLIC_PREFIX = "/ui/"  # the page's files hold nothing secret: no API key needed to fetch them


def install(app: FastAPI, *, enabled: bool) -> None:
    @app.api_route("/", methods=["GET", "HEAD"])
    async def root(request: Request) -> Response:
        if enabled and "text/html" in request.headers.get("accept", ""):
            return FileResponse(ASSETS / "index.html", headers={"Cache-Control": "no-cache"})
        return PlainTextResponse("r1local is running")

    if enabled:
        app.mount(PUBLIC_PREFIX.rstrip("/"), StaticFiles(directory=str(ASSETS)), name="webui")
