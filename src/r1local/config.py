"""Every environment variable and default r1local reads, in one place."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11435
DEFAULT_CTX = 8192  # reasoning is long; capped by the model's trained context
MIN_CTX = 2048


def debug() -> bool:
    """R1LOCAL_DEBUG=1 shows tracebacks and llama.cpp's own log."""
    return os.environ.get("R1LOCAL_DEBUG", "") not in ("", "0")


def api_key() -> str | None:
    return os.environ.get("R1LOCAL_API_KEY") or None


def home() -> Path:
    """r1local's own state (last-used times, settings); models live in the Hugging Face cache."""
    return Path(os.environ.get("R1LOCAL_HOME", Path.home() / ".r1local"))


def default_threads() -> int:
    """Decode is bound by memory bandwidth: physical cores beat hyper-threads."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1
