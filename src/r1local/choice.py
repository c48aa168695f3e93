"""Which catalog model `r1`, `r1:best` and `r1:fast` mean on a machine.

An R1 distill thinks for about 1,000 tokens before it answers, so decode speed is the wait for
every answer: at 5 tokens/s that is more than three minutes, at 15 about one. Hence:

  r1       the best quality whose estimated decode speed reaches TARGET_TPS with a reasoning-sized
           context; where nothing reaches it, the quickest that fits. Where no speed can be
           estimated (bandwidth unknown), the best quality that fits.
  r1:best  the largest that runs at all (at least MIN_TPS, a useful context).
  r1:fast  the quickest that still reasons well: the 7B class or larger at 4-bit or finer.

Quality is parameters times a factor for the quantisation's loss; every plan asks for
REASONING_CTX tokens of context and accepts no less than fit.USEFUL_CTX.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .fit import USEFUL_CTX, FitPlan, ModelShape, plan
from .hardware.model import Hardware

TARGET_TPS = 15.0  # r1's answer-time target: a 1,000-token think in about a minute
REASONING_CTX = 16384  # a long think plus the conversation around it
MIN_TPS = 5.0  # r1:best: slower than this does not run in any useful sense
FAST_MIN_PARAMS = 7e9  # r1:fast: the 1.5B distill reasons far worse (AIME 2024: 28.9 against 55.5 for the 7B)
# quality kept by each quantisation, relative to 8-bit (llama.cpp's perplexity tables, rounded)
QUANT_QUALITY = {"Q8_0": 1.0, "Q6_K": 0.99, "Q5_K_M": 0.98, "Q4_K_M": 0.96, "IQ4_XS": 0.95, "Q3_K_M": 0.88}
FAST_MIN_QUANT = 0.95  # r1:fast keeps 4-bit and finer
POLICIES = ("r1", "r1:best", "r1:fast")


@dataclass
class Choice:
    name: str
    shape: ModelShape
    plan: FitPlan
    policy: str = "r1"
    why: str = ""


def quality(shape: ModelShape) -> float:
    return shape.params * QUANT_QUALITY.get(shape.quant.upper(), 0.9)


def seconds_per_1000(p: FitPlan) -> float | None:
    """Seconds to generate 1,000 tokens (about one answer's thinking) at the estimated speed."""
    return 1000 / p.decode_tps if p.decode_tps else None


def _by_quality(c: Choice) -> tuple:
    return c.plan.n_ctx >= REASONING_CTX, c.plan.all_on_gpu, quality(c.shape)


def _r1(fitting: list[Choice]) -> Choice:
    if all(c.plan.decode_tps is None for c in fitting):
        best = max(fitting, key=_by_quality)
        best.why = "the best quality that fits in memory (the memory bandwidth is unknown, so no speed estimate)"
        return best
    fast_enough = [c for c in fitting if (c.plan.decode_tps or 0) >= TARGET_TPS]
    if fast_enough:
        best = max(fast_enough, key=lambda c: (c.plan.n_ctx >= REASONING_CTX, quality(c.shape), c.plan.decode_tps))
        best.why = f"the best quality at {TARGET_TPS:.0f} tokens/s or more with a reasoning-sized context"
        return best
    best = max(fitting, key=lambda c: (c.plan.decode_tps or 0.0, quality(c.shape)))
    best.why = f"the quickest that fits, as nothing here reaches {TARGET_TPS:.0f} tokens/s"
    return best


def _best(fitting: list[Choice]) -> Choice:
    running = [c for c in fitting if c.plan.decode_tps is None or c.plan.decode_tps >= MIN_TPS] or fitting
    best = max(running, key=lambda c: (c.plan.n_ctx >= REASONING_CTX, c.shape.file_bytes, c.plan.decode_tps or 0.0))
    best.why = f"the largest that runs (at least {MIN_TPS:.0f} tokens/s where a speed is known)"
    return best


def _fast(fitting: list[Choice]) -> Choice:
    reasoners = [c for c in fitting if c.shape.params >= FAST_MIN_PARAMS
                 and QUANT_QUALITY.get(c.shape.quant.upper(), 0.0) >= FAST_MIN_QUANT]
    pool = reasoners or fitting
    best = max(pool, key=lambda c: (c.plan.decode_tps or 0.0, -c.shape.file_bytes))
    best.why = ("the quickest of the 7B class or larger at 4-bit or finer" if reasoners
                else "the quickest that fits (no 7B-class model fits)")
    return best


PICK: dict[str, Callable[[list[Choice]], Choice]] = {"r1": _r1, "r1:best": _best, "r1:fast": _fast}


def choose(hw: Hardware, candidates: list[tuple[str, ModelShape]], policy: str = "r1") -> Choice | None:
    """The candidate `policy` ("r1", "r1:best", "r1:fast") names on this machine; None when none fits."""
    return choose_all(hw, candidates)[policy]


def choose_all(hw: Hardware, candidates: list[tuple[str, ModelShape]]) -> dict[str, Choice | None]:
    """Every policy's choice, planning each candidate once."""
    plans = [(name, s, plan(s, hw, REASONING_CTX)) for name, s in candidates]
    fitting = [(n, s, p) for n, s, p in plans if p.fits and p.n_ctx >= min(USEFUL_CTX, s.trained_ctx)]
    if not fitting:
        fitting = [(n, s, p) for n, s, p in plans if p.fits]
    return {policy: PICK[policy]([Choice(n, s, p, policy) for n, s, p in fitting]) if fitting else None
            for policy in POLICIES}
