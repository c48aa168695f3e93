"""Which catalog model `r1`, `r1:best` and `r1:fast` mean on a machine.

An R1 distill thinks for about 1,000 tokens before it answers, so decode speed is the wait for
every answer: at 5 tokens/s that is more than three minutes, at 15 about one. Hence:

  r1       the best quality whose estimated decode speed reaches TARGET_TPS with a reasoning-sized
           context; where nothing reaches it, the quickest that fits. Where no speed can be
           estimated (bandwidth unknown), the best quality that fits.
  r1:best  the best quality at a floor of MIN_TPS (a 1,000-token think within about 3 1/2 minutes).
  r1:fast  the quickest that still reasons well: the 7B class or larger at 4-bit or finer, never
           slower than r1; where that class is slower than r1, the quickest that fits (and it says so).
  r1:npu   the best quality made for the NPU (fit_npu.py): the same candidates as the others, so r1
           is the NPU's model only when it is the best that meets the target.

Quality is parameters times a factor for the quantisation's loss; every plan asks for
REASONING_CTX tokens of context and accepts no less than fit.USEFUL_CTX (an NPU's compiled
context, set by its own configuration, is taken as it is and ranks below a reasoning-sized one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .fit import USEFUL_CTX, FitPlan, ModelShape, plan
from .hardware.model import Hardware

TARGET_TPS = 15.0  # r1's answer-time target: a 1,000-token think in about a minute
REASONING_CTX = 16384  # a long think plus the conversation around it
MIN_TPS = 5.0  # r1:best: slower than this does not run in any useful sense
FAST_MIN_PARAMS = 7e9  # r1:fast: the 1.5B distill reasons far worse (AIME 2024: 28.9 against 55.5 for the 7B)
# quality kept by each quantisation, relative to 8-bit (llama.cpp's perplexity tables, rounded)
# (NPU: OpenVINO's symmetric INT4 for the NPU, which loses a little more than the asymmetric k-quants)
QUANT_QUALITY = {"Q8_0": 1.0, "Q6_K": 0.99, "Q5_K_M": 0.98, "Q4_K_M": 0.96, "IQ4_XS": 0.95, "NPU": 0.93, "Q3_K_M": 0.88}
FAST_MIN_QUANT = 0.95  # r1:fast keeps 4-bit and finer
NPU_VERDICT = "fits on NPU"
POLICIES = ("r1", "r1:best", "r1:fast", "r1:npu")
Planned = tuple[str, ModelShape, FitPlan]


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
    best = max(running, key=lambda c: (c.plan.n_ctx >= REASONING_CTX, quality(c.shape), c.plan.decode_tps or 0.0))
    best.why = f"the best quality at {MIN_TPS:.0f} tokens/s or more where a speed is known"
    return best


def _tps(c: Choice) -> float:
    return c.plan.decode_tps or 0.0


def _fast(fitting: list[Choice], r1: Choice) -> Choice:
    """The quickest reasoner, unless the reasoners are all slower than r1: then the quickest of all,
    so that r1:fast is never slower than r1."""
    reasoners = [
        c
        for c in fitting
        if c.shape.params >= FAST_MIN_PARAMS and QUANT_QUALITY.get(c.shape.quant.upper(), 0.0) >= FAST_MIN_QUANT
    ]
    if reasoners:
        best = max(reasoners, key=lambda c: (_tps(c), -c.shape.file_bytes))
        if _tps(best) >= _tps(r1):
            best.why = "the quickest of the 7B class or larger at 4-bit or finer"
            return best
        slow = (
            f"the 7B class is too slow here: about {_tps(best):.0f} tokens/s at best"
            if best.plan.decode_tps
            else "the 7B class is too slow here"
        )
    else:
        slow = "no 7B-class model fits"
    best = max(fitting, key=lambda c: (_tps(c), quality(c.shape)))
    best.why = f"the quickest that fits, as {slow}"
    return best


def _npu(fitting: list[Choice]) -> Choice | None:
    made_for_npu = [c for c in fitting if c.plan.verdict == NPU_VERDICT]
    if not made_for_npu:
        return None
    best = max(made_for_npu, key=lambda c: (quality(c.shape), _tps(c)))
    best.why = "the best quality made for the NPU that fits"
    return best


def plain_size(hw: Hardware, candidates: list[tuple[str, ModelShape]], default: str | None) -> Choice | None:
    """What a plain size (r1:7b) means among its quantisations: `default` (Q4_K_M, as Ollama's tags)
    where it fits with a useful context, else the best quality that does, saying why where a default
    was missed; None: none fits."""
    plans = [Choice(n, s, plan(s, hw, REASONING_CTX), "size") for n, s in candidates]
    fitting = [c for c in plans if c.plan.fits and c.plan.n_ctx >= min(USEFUL_CTX, c.shape.trained_ctx)]
    wanted = next((c for c in fitting if c.name == default), None)
    if wanted is not None or not fitting:
        return wanted
    best = max(fitting, key=lambda c: (c.plan.n_ctx >= REASONING_CTX, quality(c.shape)))
    if default is not None:
        best.why = (
            f"{default} does not fit this PC's free memory with an {USEFUL_CTX // 1024}k context: "
            f"using {best.name}, the best quality that does"
        )
    return best


def choose(
    hw: Hardware, candidates: list[tuple[str, ModelShape]], policy: str = "r1", npu_plans: Sequence[Planned] = ()
) -> Choice | None:
    """The candidate `policy` (one of POLICIES) names on this machine; None when none fits."""
    return choose_all(hw, candidates, npu_plans)[policy]


def choose_all(
    hw: Hardware, candidates: list[tuple[str, ModelShape]], npu_plans: Sequence[Planned] = ()
) -> dict[str, Choice | None]:
    """Every policy's choice, planning each candidate once. `npu_plans` are the NPU's models with
    their plans (fit_npu.npu_plans): they compete under the same rules."""
    plans = [(name, s, plan(s, hw, REASONING_CTX)) for name, s in candidates]
    fitting = [(n, s, p) for n, s, p in plans if p.fits and p.n_ctx >= min(USEFUL_CTX, s.trained_ctx)]
    if not fitting:
        fitting = [(n, s, p) for n, s, p in plans if p.fits]
    fitting += [(n, s, p) for n, s, p in npu_plans if p.fits]
    if not fitting:
        return dict.fromkeys(POLICIES)

    def pool(policy: str) -> list[Choice]:
        return [Choice(n, s, p, policy) for n, s, p in fitting]

    r1 = _r1(pool("r1"))
    return {
        "r1": r1,
        "r1:best": _best(pool("r1:best")),
        "r1:fast": _fast(pool("r1:fast"), r1),
        "r1:npu": _npu(pool("r1:npu")),
    }
