"""Ollama-style keep-alive durations: "5m", "1h30m", "90s", 300 (seconds), 0 (now), negative (forever)."""

from __future__ import annotations

import math
import re

from ..errors import UsageError

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
FOREVER_S = 100 * 365 * 86400.0  # longer than this (infinity too) keeps the model loaded for good


def parse_duration(value: str | float | int | None) -> float | None:
    """Seconds to keep a model loaded: 0 unloads at once, None means forever (a negative value,
    or one past FOREVER_S). Numbers are seconds; strings follow Go's duration syntax, as Ollama's do."""
    if isinstance(value, bool):
        raise UsageError("keep_alive must be a duration like 5m or a number of seconds.", param="keep_alive")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        try:
            seconds = sign * float(body)  # a bare number: seconds
        except ValueError:
            parts = _PART.findall(body)
            if not body or "".join(n + u for n, u in parts) != body:
                raise UsageError(
                    f"keep_alive {text!r} is not a duration.",
                    "Use a number of seconds or a duration like 30s, 5m, 1h30m; 0 unloads, -1 keeps forever.",
                    param="keep_alive",
                ) from None
            seconds = sign * sum(float(n) * _SECONDS[u] for n, u in parts)
    if math.isnan(seconds):
        raise UsageError(
            "keep_alive is not a number.", "Use a number of seconds or a duration like 5m.", param="keep_alive"
        )
    return None if seconds < 0 or seconds > FOREVER_S else seconds
