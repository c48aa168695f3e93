"""Time to first token of a chat's second turn: cold, with the history's cells still in the slot,
and with them restored from the RAM prefix cache after another request took the slot.

    python scripts/bench_prefix_reuse.py [MODEL.gguf] [--history-tokens 2000] [--repetitions 3]

Each repetition uses a history no earlier request has seen, so "cold" evaluates all of it. Whether
the greedy outputs agree is printed too. (The exact-parity tests are in tests/test_engine.py on an
F16 model; on a quantised random-weight proxy the logits are nearly flat, and evaluating the same
tokens in a batch of another size can flip a near-tie.)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from r1local.engine.model import Model
from r1local.engine.params import SamplingParams

ROOT = Path(__file__).resolve().parent.parent
GREEDY = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
FILLER = "The committee reviewed the quarterly figures, the staffing plan and the budget. "


def history_of(model: Model, n_tokens: int, tag: int) -> list[dict]:
    per = len(model.tokenize(FILLER))
    return [{"role": "user", "content": f"Notes {tag}. " + FILLER * (n_tokens // per)}]


def ttft(model: Model, messages: list[dict]):
    result = model.chat(messages, params=GREEDY).result()
    return result.done.timings.ttft_s, result.done.usage, result.reasoning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=ROOT / "models" / "proxy-r1-qwen-1.5b-q4_k_m.gguf")
    parser.add_argument("--history-tokens", type=int, default=2000)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    with Model.load(args.model, n_ctx=args.history_tokens + 512, n_parallel=1, n_threads=args.threads) as model:
        runs = {"cold": [], "slot": [], "ram": []}
        texts, usage = [], {}
        for rep in range(args.repetitions):
            turn1 = history_of(model, args.history_tokens, rep)
            turn2 = turn1 + [
                {"role": "assistant", "content": "The notes cover figures, staffing and budget."},
                {"role": "user", "content": "Which item came first?"},
            ]
            outputs = []
            for kind in runs:
                if kind == "slot":
                    ttft(model, turn1)  # the slot now holds turn 1
                elif kind == "ram":
                    ttft(model, turn1)
                    ttft(model, [{"role": "user", "content": "Something else entirely."}])
                seconds, usage[kind], text = ttft(model, turn2)
                runs[kind].append(seconds)
                outputs.append(text)
            texts.append(len(set(outputs)) == 1)
        stats = model.stats()
    cold = statistics.median(runs["cold"])
    figures = {
        "model": Path(args.model).name,
        "prompt_tokens": usage["cold"].prompt_tokens,
        "reused_tokens": {kind: u.cached_tokens for kind, u in usage.items()},
        "ttft_s": {kind: statistics.median(times) for kind, times in runs.items()},
        "ratio_vs_cold": {kind: statistics.median(runs[kind]) / cold for kind in ("slot", "ram")},
        "prefix_cache_hits": stats["prefix_cache_hits"],
        "greedy_output_identical": all(texts),
    }
    print(json.dumps(figures, indent=2))
    ratios = figures["ratio_vs_cold"]
    print(
        f"second turn, history in its slot: {ratios['slot']:.1%} of the cold time to first token; "
        f"restored from the RAM cache: {ratios['ram']:.1%} (target <= 15%)"
    )


if __name__ == "__main__":
    main()
