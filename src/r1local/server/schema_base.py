"""What the OpenAI and Ollama request schemas share: strictness and the bounds of their fields."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ..engine.params import MAX_TOP_K
from ..engine.text import clean

# The bounds of every numeric and list field, in both dialects (docs/api.md lists them): a request
# never allocates more than these allow, however large the numbers it sends.
MAX_MESSAGES = 4096
MAX_PARTS = 256  # content parts of one message
MAX_STOPS = 16
MAX_STOP_CHARS = 1000
MAX_DEPTH = 64  # nesting of a body: deeper ones exhaust parsers' stacks, and no request needs it
INT64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
SEED = Annotated[int, Field(ge=-(2**63), le=2**64 - 1)]  # llama.cpp uses the low 32 bits
TOP_K = Annotated[int, Field(ge=0, le=MAX_TOP_K)]
STOP = Annotated[str, StringConstraints(max_length=MAX_STOP_CHARS)]
BUDGET = Annotated[int, Field(ge=0, le=2**31 - 1)]  # reasoning tokens; the context ends it sooner
TOP_LOGPROBS = Annotated[int, Field(ge=0, le=20)]  # alternatives per token: OpenAI's and Ollama's limit


class Strict(BaseModel):
    """Strict about the types and bounds of known fields. Fields this server does not know are kept
    aside and ignored, as Ollama and llama-server do (apps send newer and vendor fields); `serve
    --strict` refuses them instead (see tolerance.py)."""

    # NaN and infinity (which Python's JSON parser accepts) are refused like any out-of-range number
    model_config = ConfigDict(extra="allow", populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        """A lone surrogate ("\\ud800") is valid JSON but no text: it becomes U+FFFD, as in Go's JSON."""
        return _cleaned(data, 0)


def _cleaned(value: Any, depth: int) -> Any:
    """`value` with every string in it (keys too) cleaned; nesting past MAX_DEPTH is refused."""
    if depth > MAX_DEPTH:
        raise ValueError(f"The request nests more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(k) if isinstance(k, str) else k: _cleaned(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v, depth + 1) for v in value]
    return value


def neutral_only(value: Any, neutral: tuple, what: str) -> Any:
    """Accept a documented field this server cannot honour only at its do-nothing value."""
    if value not in neutral:
        raise ValueError(f"{what} is not supported by this server")
    return value
