"""The built-in chat page: static files shipped inside the package, served at / to browsers (other
clients asking / still get the one line Ollama's clients probe for) and under /ui/, every one with a
Content-Security-Policy that lets the page reach nothing but this server."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = Path(str(resources.files("r1local") / "webui"))  # read from disk by StaticFiles and FileResponse
PUBLIC_PREFIX = "/ui/"  # the page's files hold nothing secret: no API key needed to fetch them

# The page shows what a model wrote, and a model can be talked into writing HTML that fetches a URL
# carrying the conversation. The sanitiser drops such markup; this policy stops what it might miss:
# scripts, styles, fonts and data only from this server, images only inline, no media, frames,
# plugins or form posts, and no other site may frame the page (clickjacking).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "media-src 'none'",
        "object-src 'none'",
        "frame-src 'none'",
        "worker-src 'none'",
        "manifest-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a link the user follows does not tell the site where it came from
    "Cache-Control": "no-cache",  # revalidated, so an upgraded r1local serves its new page at once
}


class PageFiles(StaticFiles):
    """The page's files, each sent with the page's security headers."""

    def file_response(self, *args, **kwargs) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(PAGE_HEADERS)
        return response


def install(app: FastAPI, *, enabled: bool) -> None:
    @app.api_route("/", methods=["GET", "HEAD"])
    async def root(request: Request) -> Response:
        if enabled and "text/html" in request.headers.get("accept", ""):
            return FileResponse(ASSETS / "index.html", headers=PAGE_HEADERS)
        return PlainTextResponse("r1local is running")

    if enabled:
        app.mount(PUBLIC_PREFIX.rstrip("/"), PageFiles(directory=str(ASSETS)), name="webui")
