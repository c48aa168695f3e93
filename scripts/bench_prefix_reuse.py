"""Time to first token of a chat's second turn, with its history's KV cache reused vs cold.

    python scripts/bench_prefix_reuse.py [MODEL.gguf] [--history-tokens 2000] [--repetitions 3]

Cold: the slot last held an unrelated prompt, so the whole history is evaluated again.
Warm: the slot holds turn 1, so only the last answer and the new question are evaluated.
Whether both greedy outputs agree is printed too. (The exact-parity test is tests/test_engine.py on
an F16 model; on a quantised random-weight proxy the logits are nearly flat, and evaluating the same
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
GREEDY = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)
FILLER = "The committee reviewed the quarterly figures, the staffing plan and the budget. "


def history_of(model: Model, n_tokens: int) -> list[dict]:
    per = len(model.tokenize(FILLER))
    return [{"role": "user", "content": "Read these notes. " + FILLER * (n_tokens // per)}]


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
        turn1 = history_of(model, args.history_tokens)
        turn2 = turn1 + [
            {"role": "assistant", "content": "The notes cover figures, staffing and budget."},
            {"role": "user", "content": "Which item came first?"},
        ]
        unrelated = [{"role": "user", "content": "Something else entirely."}]
        cold, warm, same = [], [], []
        for _ in range(args.repetitions):
            ttft(model, unrelated)
            t, usage_cold, text_cold = ttft(model, turn2)
            cold.append(t)
            ttft(model, unrelated)
            ttft(model, turn1)
            t, usage_warm, text_warm = ttft(model, turn2)
            warm.append(t)
            assert usage_warm.cached_tokens > usage_cold.cached_tokens
            same.append(text_warm == text_cold)
    figures = {
        "model": Path(args.model).name,
        "prompt_tokens": usage_warm.prompt_tokens,
        "reused_tokens": usage_warm.cached_tokens,
        "ttft_cold_s": statistics.median(cold),
        "ttft_warm_s": statistics.median(warm),
        "ratio": statistics.median(warm) / statistics.median(cold),
        "greedy_output_identical": all(same),
    }
    print(json.dumps(figures, indent=2))
    print(f"second turn: {figures['ratio']:.1%} of the cold time to first token (target <= 15%)")


if __name__ == "__main__":
    main()
