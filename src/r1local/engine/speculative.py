"""Speculative decoding's drafts: where they come from and how long they may be.

A draft is a guess at the tokens that follow a slot's next token. The scheduler feeds the next
token and the draft in the same llama_decode as every other slot's work, samples the target model
at each position, and keeps the draft up to the first token the target would not have chosen, plus
the target's own token there (llama.cpp's rule: every kept token is a sample of the target, so
greedy output is the same and sampled output keeps the target's distribution).

n-gram lookup drafts from the slot's own history (prompt and generated text): the continuation of
the latest earlier occurrence of the last few tokens, as llama.cpp's ngram-simple does, found in a
dictionary instead of a backward scan. Pacing picks each slot's draft length from what the slot
accepts and what a row costs (StepCost): no draft where it would slow the step down. While an
n-gram slot does not draft, its guesses are still checked, for free, against the tokens it then
writes (a shadow draft), so a slot that starts copying again drafts again at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..errors import UsageError

NGRAM_SIZES = (4, 3, 2)  # lookup keys, longest first: a longer match predicts better
PRIOR_ACCEPTANCE = 0.85  # a fresh slot's chance that a draft token is kept (an n-gram match mostly is)
SMOOTHING = 0.3  # weight of the latest verification in a slot's acceptance
RECOVERY = 0.02  # per step without a draft, the acceptance's drift back toward the prior
DEFAULT_ROW_COST = 0.5  # an extra row against a one-row step, until measured
STEP_WEIGHT = 0.2  # weight of the latest step in its size's recent time
EXACT_ROWS = 32  # step sizes timed row count by row count; larger ones by powers of two
SHARED_SLOWDOWN = 0.1  # how much longer a draft may make a step that other slots share
SHADOW_LENGTH = 8  # tokens of an unsent n-gram guess checked against what the slot then writes
DRAFT_P_MIN = 0.75  # llama.cpp's p_min default for long (the vendored one's is 0): a doubted guess is rarely kept


@dataclass(frozen=True)
class Speculation:
    """--spec SOURCE --draft-max N --draft-min N --draft-p-min P."""

    source: str = "ngram"  # "ngram" | "draft"
    draft_max: int = 16  # tokens one slot may draft per step
    draft_min: int = 2  # shorter drafts are not worth a verification
    draft: str | None = None  # the draft model's file (source "draft")
    p_min: float = DRAFT_P_MIN  # a draft model's guess ends at its first token less likely than this

    def __post_init__(self) -> None:
        if self.source not in ("ngram", "draft") or (self.source == "draft") != bool(self.draft):
            raise UsageError(f"Unknown speculation source {self.source!r}.", "Use --spec ngram or --draft MODEL.")
        if not 1 <= self.draft_min <= self.draft_max:
            raise UsageError(
                f"--draft-min {self.draft_min} and --draft-max {self.draft_max}: give 1 <= --draft-min <= --draft-max.",
                "Example: --draft-min 2 --draft-max 16",
            )
        if not 0 <= self.p_min <= 1:
            raise UsageError(
                f"--draft-p-min {self.p_min}: give a probability from 0 to 1.", "Example: --draft-p-min 0.75"
            )


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
                follows[tuple(tokens[end - n : end])] = end
        tokens.append(token)

    def propose(self, limit: int) -> list[int]:
        """What followed the latest earlier occurrence of the sequence's last n tokens (longest n first)."""
        tokens = self.tokens
        for n, follows in self._follows:
            start = follows.get(tuple(tokens[-n:])) if len(tokens) >= n else None
            if start is not None:
                return tokens[start : start + limit]
        return []


class StepCost:
    """What a generation step costs against its rows, measured: the recent time of a step of each
    row count up to EXACT_ROWS, of 64, 128... rows beyond (a step counts in the smallest such size
    that holds it). A row costs real compute on a CPU (its matmuls and its logits over the whole
    vocabulary) but rows share the weights' reads, so the cost grows less than the rows do, and
    unevenly: llama.cpp's CPU matmuls work in tiles, so 8 rows can cost less than 6 (measured on
    Gemma 3 270M: 4.6x and 5.1x a one-row step). Sizes not measured yet are guessed at
    DEFAULT_ROW_COST of a one-row step per extra row, and found out once a draft is tried."""

    def __init__(self) -> None:
        self._seconds: dict[int, float] = {}  # size -> recent seconds of such a step
        self._draft_token: float | None = None  # recent seconds a draft model spends per token it drafts

    @staticmethod
    def size(rows: int) -> int:
        return rows if rows <= EXACT_ROWS else 1 << (rows - 1).bit_length()

    def observe(self, rows: int, seconds: float) -> None:
        size = self.size(rows)
        known = self._seconds.get(size)
        self._seconds[size] = seconds if known is None else known + STEP_WEIGHT * (seconds - known)

    def observe_draft(self, tokens: int, seconds: float) -> None:
        """A draft model's call that spent `seconds` drafting `tokens` tokens."""
        per_token = seconds / max(tokens, 1)
        known = self._draft_token
        self._draft_token = per_token if known is None else known + STEP_WEIGHT * (per_token - known)

    def draft_relative(self) -> float:
        """A drafted token's drafting time against a one-row step (0 until both are measured)."""
        one = self._seconds.get(1)
        return self._draft_token / one if one and self._draft_token is not None else 0.0

    def relative(self, rows: int) -> float:
        """A step of `rows` rows against a step of one."""
        one = self._seconds.get(1)
        size = self.size(rows)
        if one is None or size not in self._seconds:
            return 1 + DEFAULT_ROW_COST * (rows - 1)
        return self._seconds[size] / one


class Pacing:
    """One slot's draft length: the length that makes the step yield the most tokens per unit of
    time, given the chance that each draft token is kept (this slot's recent acceptance) and what
    a step of that many rows costs (StepCost). A slot whose drafts are refused stops drafting (the best length is 0)
    and its estimate drifts back toward PRIOR_ACCEPTANCE, so it tries again later."""

    def __init__(self, spec: Speculation) -> None:
        self.spec = spec
        self.acceptance = PRIOR_ACCEPTANCE  # chance that a draft token is kept, smoothed
        self.shadow: list[int] = []  # a guess not sent, checked against the tokens written next
        self._matched = 0  # of the shadow's tokens, written so far

    def watch(self, guess: list[int]) -> None:
        """A guess that was not sent as a draft: the tokens the slot writes next tell what it was worth."""
        self.shadow, self._matched = guess, 0

    def wrote(self, token: int) -> None:
        """A token the slot wrote: scores the shadow draft as a verification would have."""
        if not self.shadow:
            return
        if token == self.shadow[self._matched]:
            self._matched += 1
            if self._matched < len(self.shadow):
                return
        self.verified(len(self.shadow), self._matched)
        self.shadow = []

    def length(self, limit: int, rows: int, slots: int, cost: Callable[[int], float], draft_cost: float = 0.0) -> int:
        """The draft length (0: none) for a step that already holds `rows` rows of `slots`
        generating sequences; cost(rows) is a step's time against a one-row step's, and draft_cost
        the time spent making each draft token (a draft model's forward; 0 for n-grams). A draft speeds
        this slot up but slows every slot in the step, so the length chosen maximises the sum of
        the slots' log token rates (proportional fairness): at one slot, tokens per second; in a
        compute-bound batch a draft must earn far more than its rows cost each slot, or is not sent.
        Beside other slots a draft may also lengthen the step by at most SHARED_SLOWDOWN: the others
        gain nothing from it."""
        base = cost(rows)
        best_k, best = 0, 1 / base**slots
        chance, expected = 1.0, 1.0  # this slot's tokens from the step
        for k in range(1, min(limit, self.spec.draft_max) + 1):
            chance *= self.acceptance
            expected += chance
            step = cost(rows + k) + k * draft_cost
            if slots > 1 and step > base * (1 + SHARED_SLOWDOWN):
                continue
            value = expected / step**slots
            if value > best and k >= self.spec.draft_min:  # a shorter draft is never sent
                best_k, best = k, value
        if best_k == 0:
            self.acceptance += RECOVERY * (PRIOR_ACCEPTANCE - self.acceptance)
            return 0
        self.shadow = []  # a real draft is verified from here on
        return best_k

    def declined(self) -> None:
        """The draft model was asked for tokens and was sure of none: counted as one refused token,
        so a draft that is never sure stops being asked (each ask costs a catch-up and a decode)."""
        self.verified(1, 0)

    def verified(self, drafted: int, accepted: int) -> None:
        tried = accepted + (accepted < drafted)  # tokens compared until the first refusal
        self.acceptance += SMOOTHING * (accepted / tried - self.acceptance)
