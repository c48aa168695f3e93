"""JSON response formats -> GBNF grammars the engine's sampler enforces token by token."""

from __future__ import annotations

import json
from typing import Any

from ..engine.bindings import submodule
from ..errors import UsageError


def json_grammar(schema: dict[str, Any] | None, param: str) -> str:
    """Any JSON object when `schema` is empty or None, otherwise JSON that follows `schema`."""
    grammars = submodule("llama_grammar")
    if not schema:
        return grammars.JSON_GBNF
    try:
        return grammars.json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises assorted types for schemas it cannot express
        raise UsageError(
            f"The JSON schema cannot be turned into a grammar ({type(exc).__name__}: {exc}).",
            "Simplify the schema: plain types, properties, required, enum, arrays and $defs work.",
            param=param,
        ) from None
