"""JSON response formats -> GBNF grammars the engine's sampler enforces token by token.

A grammar is checked against the vocabulary at every generated token, and its cost grows with the
alternatives open at a point (an enum of 20,000 values once made every other request wait half a
minute): schemas are bounded before they become grammars, and every grammar, raw GBNF included,
is bounded by the engine (engine/gbnf.py: alternatives open at once; the scheduler: time per token)."""

from __future__ import annotations

import json
from typing import Any

from ..engine.bindings import submodule
from ..engine.gbnf import MAX_FANOUT
from ..errors import UsageError

MAX_SCHEMA_CHARS = 16 * 1024  # the schema as JSON text
MAX_ENUM = MAX_FANOUT  # values of one enum: each is an alternative open at once
MAX_GRAMMAR_CHARS = 64 * 1024  # the GBNF it becomes


def json_grammar(schema: dict[str, Any] | None, param: str) -> str:
    """Any JSON object when `schema` is empty or None, otherwise JSON that follows `schema`."""
    grammars = submodule("llama_grammar")
    if not schema:
        return grammars.JSON_GBNF
    text = bounded_schema(schema, param)
    try:
        grammar = grammars.json_schema_to_gbnf(text)
    except Exception as exc:  # the converter raises assorted types for schemas it cannot express
        raise UsageError(
            f"The JSON schema cannot be turned into a grammar ({type(exc).__name__}: {exc}).",
            "Simplify the schema: plain types, properties, required, enum, arrays and $defs work.",
            param=param,
        ) from None
    return bounded_grammar(grammar, param)


def bounded_schema(schema: Any, param: str) -> str:
    """`schema` as JSON text, refused past the bounds above."""
    text = json.dumps(schema)
    if len(text) > MAX_SCHEMA_CHARS or _largest_enum(schema) > MAX_ENUM:
        raise UsageError(
            f"The JSON schema is too large: at most {MAX_SCHEMA_CHARS} characters and {MAX_ENUM} values per enum.",
            "Constrain less in the schema and check the rest after the answer.",
            param=param,
        )
    return text


def bounded_grammar(grammar: str, param: str) -> str:
    if len(grammar) > MAX_GRAMMAR_CHARS:
        raise UsageError(
            f"The JSON schema makes a grammar of {len(grammar)} characters, more than {MAX_GRAMMAR_CHARS}.",
            "Simplify the schema.",
            param=param,
        )
    return grammar


def _largest_enum(node: Any) -> int:
    if isinstance(node, dict):
        own = len(node["enum"]) if isinstance(node.get("enum"), list) else 0
        return max([own, *(_largest_enum(v) for v in node.values())])
    if isinstance(node, list):
        return max((_largest_enum(v) for v in node), default=0)
    return 0
