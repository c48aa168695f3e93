"""What `r1local bench` measures: prefill and decode speed, time to first token, peak memory.

The tests mirror llama.cpp's llama-bench so the figures compare one to one:
- ppN: a prompt of N tokens is evaluated (one batch when N <= n_batch) and one token sampled;
  tokens/s = N / (submit -> done). Its time to first token is reported too.
- tgN: after a one-token prompt, N more tokens are generated one decode at a time (greedy, end of
  sequence ignored); tokens/s = N / (first token -> done).
Every request goes through the real engine (tokeniser, scheduler, sampler, detokeniser), timed from
the caller's side. Each repetition's prompt starts with different words, so the engine's prefix
reuse cannot skip work (only the BOS token is shared; it is not counted).
"""

from __future__ import annotations

import importlib.metadata
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .engine.events import Done
from .engine.model import Model
from .engine.params import SamplingParams
from .errors import R1Error
from .rpc.engine import SplitModel

Benched = Model | SplitModel  # llama.cpp, in this process or split over RPC workers

# Words that Qwen's and Llama's BPE vocabularies encode as one token each (with the leading space).
WORDS = (
    "the of and to in is was for on that with as by at from his it an were are which this be "
    "has had not but or have first one their its new after who they two her she also been other "
    "time when all during into school would there city year can most only over these then some"
).split()


@dataclass(frozen=True)
class Spread:
    median: float
    mean: float
    stdev: float
    min: float
    max: float
    runs: tuple[float, ...]

    @classmethod
    def of(cls, runs: list[float]) -> Spread:
        return cls(
            median=statistics.median(runs),
            mean=statistics.fmean(runs),
            stdev=statistics.stdev(runs) if len(runs) > 1 else 0.0,
            min=min(runs),
            max=max(runs),
            runs=tuple(runs),
        )


@dataclass(frozen=True)
class BenchReport:
    model: str
    path: str
    file_type: str
    parameters: int
    size_bytes: int
    threads: int
    n_ctx: int
    pp_tokens: int
    tg_tokens: int
    repetitions: int
    pp_tokens_per_s: Spread
    tg_tokens_per_s: Spread
    ttft_s: Spread  # of the ppN prompt
    peak_rss_bytes: int
    llama_cpp_python: str
    draft_tokens: int = 0  # speculative draft tokens verified over the tg runs (--spec, --draft)
    draft_accepted: int = 0  # of which the model kept

    @property
    def acceptance(self) -> float | None:
        return self.draft_accepted / self.draft_tokens if self.draft_tokens else None

    def to_dict(self) -> dict:
        return asdict(self)


Progress = Callable[[str, int, int], None]  # (test name, repetitions done, repetitions in all)


def peak_rss_bytes() -> int:
    """This process's high-water mark of resident memory (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class _Prompts:
    """Prompts of an exact length made of single-token words. Consecutive prompts start with
    different words, so none shares more than the BOS token with the one before it."""

    def __init__(self, model: Benched, seed: int = 0) -> None:
        self.words = [w for w in WORDS if len(model.tokenize(" " + w)) == 1]
        self.rng = random.Random(seed)
        self.calls = 0

    def text(self, n_tokens: int) -> str:
        first = self.words[self.calls % len(self.words)]
        self.calls += 1
        rest = self.rng.choices(self.words, k=n_tokens - 1)
        return "".join(" " + w for w in [first, *rest])


def _timed(model: Benched, prompt: str, max_tokens: int) -> tuple[float, float, Done]:
    """Run one greedy request; returns (seconds to the first event, seconds to done, done)."""
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    start = time.perf_counter()
    first = None
    for event in model.complete(prompt, params=params):
        if first is None:
            first = time.perf_counter() - start
        if isinstance(event, Done):
            elapsed = time.perf_counter() - start
            if event.finish_reason == "error":
                raise R1Error(f"Generation failed during the benchmark: {event.error}.")
            return first, elapsed, event
    raise AssertionError("a stream always ends with Done")


def _pp(model: Benched, prompts: _Prompts, n: int) -> tuple[float, float]:
    """One ppN run: (tokens/s, time to first token)."""
    first, elapsed, done = _timed(model, prompts.text(n), 1)
    evaluated = done.usage.prompt_tokens - done.usage.cached_tokens
    if evaluated != n:  # the word list assumption broke for this vocabulary
        raise R1Error(
            f"The pp prompt came to {evaluated} tokens instead of {n} with this model's vocabulary.",
            "Report this model; the other tests still work.",
        )
    return n / elapsed, first


def _tg(model: Benched, prompts: _Prompts, n: int) -> tuple[float, Done]:
    """One tgN run: tokens/s over N decodes after the first token, and its end (draft counts)."""
    _, elapsed, done = _timed(model, prompts.text(1), n + 1)
    decodes = done.usage.completion_tokens - 1
    if decodes != n:
        raise R1Error(f"The tg run generated {decodes + 1} tokens instead of {n + 1}.")
    # ttft_s comes from the engine's clock (perf_counter, same as ours) from submission on.
    return decodes / (elapsed - done.timings.ttft_s), done


def context_for(pp: int, tg: int) -> int:
    """The per-sequence context a bench run needs: the longer test plus a little room."""
    return max(pp, tg + 2) + 16


def run_bench(
    model: Benched,
    *,
    pp: int = 512,
    tg: int = 128,
    repetitions: int = 5,
    progress: Progress | None = None,
) -> BenchReport:
    """Warm the model up, then time ppN and tgN `repetitions` times each."""
    if pp < 1 or tg < 1 or repetitions < 1:
        raise ValueError("pp, tg and repetitions must be >= 1")
    progress = progress or (lambda *_: None)
    prompts = _Prompts(model)
    progress("warm-up", 0, 1)
    _timed(model, prompts.text(min(pp, 16)), 2)  # fault the weights in, allocate buffers
    progress("warm-up", 1, 1)
    pp_runs, ttfts, tg_runs, tg_ends = [], [], [], []
    for i in range(repetitions):
        speed, ttft = _pp(model, prompts, pp)
        pp_runs.append(speed)
        ttfts.append(ttft)
        progress(f"pp{pp}", i + 1, repetitions)
    for i in range(repetitions):
        speed, done = _tg(model, prompts, tg)
        tg_runs.append(speed)
        tg_ends.append(done)
        progress(f"tg{tg}", i + 1, repetitions)
    info = model.info
    return BenchReport(
        model=model.name,
        path=str(model.path),
        file_type=info.file_type,
        parameters=info.parameter_count,
        size_bytes=model.path.stat().st_size,
        threads=model.n_threads,
        n_ctx=model.n_ctx,
        pp_tokens=pp,
        tg_tokens=tg,
        repetitions=repetitions,
        pp_tokens_per_s=Spread.of(pp_runs),
        tg_tokens_per_s=Spread.of(tg_runs),
        ttft_s=Spread.of(ttfts),
        peak_rss_bytes=peak_rss_bytes(),
        llama_cpp_python=importlib.metadata.version("llama-cpp-python"),
        draft_tokens=sum(d.timings.draft_n for d in tg_ends),
        draft_accepted=sum(d.timings.draft_n_accepted for d in tg_ends),
    )
