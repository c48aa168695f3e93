"""Which web page origins may call the API: the server's own page, Ollama's default origins (local
pages on any port and desktop-app schemes, so the apps written for Ollama work unchanged), and
those the operator adds with --cors-origin or R1LOCAL_ORIGINS, where `*` is a wildcard as in
OLLAMA_ORIGINS. Every other site is refused."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Ollama's envconfig.AllowedOrigins
DEFAULT_ORIGINS = (
    *(
        f"{scheme}://{host}{port}"
        for host in ("localhost", "127.0.0.1", "0.0.0.0")
        for scheme in ("http", "https")
        for port in ("", ":*")
    ),
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
)


def _pattern(origin: str) -> str:
    """A port wildcard matches a port number; any other `*` a run of host characters."""
    origin = origin.lower().rstrip("/")
    if origin == "*":
        return ".*"
    parts = [re.escape(part) for part in re.split(r"(:\*$|\*)", origin) if part]
    return "".join({r":\*": r":\d{1,5}", r"\*": r"[^/:@]*"}.get(part, part) for part in parts)


class OriginPolicy:
    def __init__(self, extra: Iterable[str]) -> None:
        self.origins = (*DEFAULT_ORIGINS, *extra)
        self.regex = "|".join(f"(?:{_pattern(origin)})" for origin in self.origins)
        self._compiled = re.compile(self.regex)

    def allows(self, origin: str) -> bool:
        return self._compiled.fullmatch(origin.lower().rstrip("/")) is not None
