"""Fields a request carries that this server does not know: ignored and logged at debug level,
as Ollama and llama-server do, or refused with a 400 naming them when the server runs --strict."""

from __future__ import annotations

import logging

from pydantic import BaseModel

from ..errors import UsageError
from .settings import ServerSettings

log = logging.getLogger("r1local.server")


def unknown_fields(body: BaseModel, prefix: str = "") -> list[str]:
    """Dotted names of every unknown field, nested objects and lists included."""
    names = [prefix + name for name in body.model_extra or {}]
    for name in type(body).model_fields:
        value = getattr(body, name)
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if isinstance(item, BaseModel):
                where = f"{name}.{index}" if isinstance(value, list) else name
                names += unknown_fields(item, f"{prefix}{where}.")
    return names


def check_fields(body: BaseModel, settings: ServerSettings) -> None:
    unknown = unknown_fields(body)
    if not unknown:
        return
    if settings.strict:
        listed = ", ".join(repr(name) for name in unknown[:5])
        raise UsageError(
            f"Unknown parameter{'s' if len(unknown) > 1 else ''} {listed}.",
            "The server runs with --strict; remove the field or restart without --strict.",
            param=unknown[0],
        )
    log.debug("ignoring unknown fields: %s", ", ".join(unknown))
