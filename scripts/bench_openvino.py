"""OpenVINO engine (CPU device) next to llama.cpp on the same GGUF: load times (first, with the
compiled-model cache empty, then cached) and greedy decode tokens/s, alternating rounds, medians
and the ratio.

    python scripts/bench_openvino.py [--model models/tiny-r1-qwen.gguf] [--rounds 3] [--tokens 128]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from r1local.engine.model import Model  # noqa: E402
from r1local.engine.openvino import OpenVINOModel  # noqa: E402
from r1local.engine.params import SamplingParams  # noqa: E402

PROMPT = "Explain why the sky is blue."


def timed_load(load) -> tuple[object, float]:
    start = time.perf_counter()
    model = load()
    return model, time.perf_counter() - start


def decode_tps(model, tokens: int) -> float:
    params = SamplingParams(temperature=0, max_tokens=tokens, ignore_eos=True)
    return (
        model.chat([{"role": "user", "content": PROMPT}], params=params).result().done.timings.generation_tokens_per_s
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "tiny-r1-qwen.gguf")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        import os

        os.environ["R1LOCAL_OPENVINO_CACHE"] = cache
        opts = dict(n_ctx=1024, n_parallel=1, n_threads=args.threads)
        ov, first = timed_load(lambda: OpenVINOModel.load(args.model, device="CPU", **opts))
        ov.close()
        ov, cached = timed_load(lambda: OpenVINOModel.load(args.model, device="CPU", **opts))
        llama, llama_load = timed_load(lambda: Model.load(args.model, **opts))
        decode_tps(ov, 8), decode_tps(llama, 8)  # warm both
        ov_runs, llama_runs = [], []
        for _ in range(args.rounds):
            ov_runs.append(decode_tps(ov, args.tokens))
            llama_runs.append(decode_tps(llama, args.tokens))
        ov.close()
        llama.close()
    ov_tps, llama_tps = statistics.median(ov_runs), statistics.median(llama_runs)
    print(
        f"model {args.model.name}, {args.threads} thread(s), {args.tokens} greedy tokens, {args.rounds} alternating rounds"
    )
    print(
        f"OpenVINO load: first {first:.1f} s (converts and compiles), cached {cached:.1f} s; llama.cpp load {llama_load:.2f} s"
    )
    print(
        f"decode tokens/s (median): OpenVINO CPU {ov_tps:.1f}, llama.cpp CPU {llama_tps:.1f}, "
        f"ratio {ov_tps / llama_tps:.2f}x"
    )


if __name__ == "__main__":
    main()
