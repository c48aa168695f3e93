"""A request's sampling settings as the engine takes them: unset fields keep R1's defaults, top_p 0
means greedy, windows past the context shrink to it, and max_tokens is clamped to the context (an
absurd value is not an error). Every dialect and the CLI go through here."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..engine.params import MAX_REPEAT_LAST_N, SamplingParams
from ..errors import UsageError


@dataclass(frozen=True)
class Sampling:
    """The sampler fields a request set; None keeps the engine's (R1's) default."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None  # -1: the whole context
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    ignore_eos: bool | None = None

    def fields(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}


def sampling_params(
    n_ctx: int | None,
    *,
    max_tokens: int | None,
    stop: list[str],
    grammar: str | None,
    context_limit: int | None = None,
    **fields: Any,
) -> SamplingParams:
    """Engine settings from a request's fields (those left None keep their defaults). n_ctx None:
    the engine behind (an upstream server) enforces its own context."""
    if n_ctx is not None and context_limit and context_limit > n_ctx:
        raise UsageError(
            f"num_ctx {context_limit} is more than the {n_ctx} tokens of context this model is loaded with.",
            f"Restart the server with --ctx {context_limit}, or send num_ctx {n_ctx} or less.",
            param="options.num_ctx",
        )
    context = None if n_ctx is None else min(context_limit or n_ctx, n_ctx)
    fields = {k: v for k, v in fields.items() if v is not None}
    if fields.get("top_p") == 0.0:
        del fields["top_p"]
        fields["temperature"] = 0.0
    if fields.get("repeat_last_n") is not None:  # a window past the context holds nothing more
        whole = min(context or MAX_REPEAT_LAST_N, MAX_REPEAT_LAST_N)
        fields["repeat_last_n"] = whole if fields["repeat_last_n"] == -1 else min(fields["repeat_last_n"], whole)
    if not max_tokens or max_tokens < 1:
        max_tokens = None
    elif context is not None:
        max_tokens = min(max_tokens, context)
    return SamplingParams(**fields, max_tokens=max_tokens, stop=stop, grammar=grammar, context_limit=context_limit)
