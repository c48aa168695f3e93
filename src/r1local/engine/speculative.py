"""Speculative decoding's drafts: where they come from and how long they may be.

A draft is a guess at the tokens that follow a slot's next token. The scheduler feeds the next
token and the draft in the same llama_decode as every other slot's work, samples the target model
at each position, and keeps the draft up to the first token the target would not have chosen, plus
the target's own token there (llama.cpp's rule: every kept token is a sample of the target, so
greedy output is the same and sampled output keeps the target's distribution).

n-gram lookup drafts from the slot's own history (prompt and generated text): the continuation of
the latest earlier occurrence of the last few tokens, as llama.cpp's ngram-simple does, found in a
dictionary instead of a backward scan. Pacing adapts each slot's draft length to what it accepts
and pauses a slot whose drafts keep being refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..errors import UsageError

NGRAM_SIZES = (4, 3, 2)  # lookup keys, longest first: a longer match predicts better
POOR_ACCEPTANCE = 0.3  # below this (recent drafts' accepted share) a slot pauses drafting
SMOOTHING = 0.3  # weight of the latest verification in the recent acceptance
PAUSE_TOKENS = (16, 256)  # a paused slot's first pause, and the longest (each pause doubles)
DRAFT_ROWS = 32  # a step's rows beyond which draft tokens cost more compute than they save (CPU)


@dataclass(frozen=True)
class Speculation:
    """--spec SOURCE --draft-max N --draft-min N."""

    source: str = "ngram"
    draft_max: int = 16  # tokens one slot may draft per step
    draft_min: int = 2  # shorter drafts are not worth a verification

    def __post_init__(self) -> None:
        if self.source not in ("ngram", "draft"):
            raise UsageError(f"Unknown speculation source {self.source!r}.", "Use --spec ngram or --draft MODEL.")
        if not 1 <= self.draft_min <= self.draft_max:
            raise UsageError(f"--draft-min {self.draft_min} and --draft-max {self.draft_max}: give "
                             "1 <= --draft-min <= --draft-max.", "Example: --draft-min 2 --draft-max 16")


class DraftSource(Protocol):
    """One sequence's drafts: told every token that joins the sequence, asked for a guess."""

    def add(self, token: int) -> None: ...

    def propose(self, limit: int) -> list[int]: ...


class NgramIndex:
    """A sequence's tokens and, for each n of NGRAM_SIZES, where each n-gram was last followed."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens: list[int] = []
        self._follows: list[tuple[int, dict[tuple[int, ...], int]]] = [(n, {}) for n in NGRAM_SIZES]
        for token in tokens:
            self.add(token)

    def add(self, token: int) -> None:
        tokens, end = self.tokens, len(self.tokens)
        for n, follows in self._follows:
            if end >= n:  # the n-gram ending before `token` is followed by position `end`
                follows[tuple(tokens[end - n:end])] = end
        tokens.append(token)

    def propose(self, limit: int) -> list[int]:
        """What followed the latest earlier occurrence of the sequence's last n tokens (longest n first)."""
        tokens = self.tokens
        for n, follows in self._follows:
            start = follows.get(tuple(tokens[-n:])) if len(tokens) >= n else None
            if start is not None:
                return tokens[start:start + limit]
        return []


class Pacing:
    """One slot's draft length: doubled after a draft accepted whole, cut to what was accepted
    (plus one) after a refusal; drafting pauses while the recent acceptance stays poor."""

    def __init__(self, spec: Speculation) -> None:
        self.spec = spec
        self.length = spec.draft_max
        self.acceptance = 1.0  # recent drafts' accepted share, smoothed
        self._pause = PAUSE_TOKENS[0]
        self._paused_for = 0

    def limit(self) -> int:
        """Tokens this slot may draft now (0: paused)."""
        if self._paused_for > 0:
            self._paused_for -= 1
            return 0
        return self.length

    def verified(self, drafted: int, accepted: int) -> None:
        spec = self.spec
        self.acceptance += SMOOTHING * (accepted / drafted - self.acceptance)
        self.length = min(spec.draft_max, 2 * self.length) if accepted == drafted else max(spec.draft_min, accepted + 1)
        if self.acceptance < POOR_ACCEPTANCE:
            self._paused_for, self._pause = self._pause, min(2 * self._pause, PAUSE_TOKENS[1])
            self.acceptance = POOR_ACCEPTANCE  # the next drafts decide afresh
        elif accepted == drafted:
            self._pause = PAUSE_TOKENS[0]
