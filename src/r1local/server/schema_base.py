"""What the OpenAI and Ollama request schemas share: strictness, and the mapping to engine settings."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from ..engine.params import SamplingParams


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def neutral_only(value: Any, neutral: tuple, what: str) -> Any:
    """Accept a documented field this server cannot honour only at its do-nothing value."""
    if value not in neutral:
        raise ValueError(f"{what} is not supported by this server")
    return value


class NoLogprobs(Strict):
    """Both dialects document logprobs; this server accepts them only when they ask for nothing."""

    logprobs: bool | None = None
    top_logprobs: int | None = None

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v: bool | None) -> bool | None:
        return neutral_only(v, (None, False), "logprobs")

    @field_validator("top_logprobs")
    @classmethod
    def _no_top_logprobs(cls, v: int | None) -> int | None:
        return neutral_only(v, (None, 0), "top_logprobs")


def sampling_params(n_ctx: int, *, max_tokens: int | None, stop: list[str], grammar: str | None,
                    **fields: Any) -> SamplingParams:
    """Engine settings from a request: unset fields keep R1's defaults, top_p 0 means greedy, and
    max_tokens is clamped to the context (an absurd value is not an error)."""
    if fields.get("top_p") == 0.0:
        fields.update(top_p=None, temperature=0.0)
    return SamplingParams(
        **{k: v for k, v in fields.items() if v is not None},
        max_tokens=min(max_tokens, n_ctx) if max_tokens else None, stop=stop, grammar=grammar,
    )
