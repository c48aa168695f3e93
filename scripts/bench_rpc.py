"""The cost of spreading a model over an RPC worker: the 1.5B proxy on this machine alone vs split
between this process and one `r1local worker` on loopback (same threads on each side), alternating
rounds, medians and the ratio.

    python scripts/bench_rpc.py [--model models/proxy-r1-qwen-1.5b-q4_k_m.gguf] [--rounds 3]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from r1local.bench import run_bench
from r1local.engine.model import Model
from r1local.rpc import build, load_split
from r1local.rpc.probe import probe, reachable

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "proxy-r1-qwen-1.5b-q4_k_m.gguf")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pp", type=int, default=64)
    parser.add_argument("--tg", type=int, default=32)
    args = parser.parse_args()
    start = time.perf_counter()
    build.ensure_built(print)
    print(f"RPC build ready in {time.perf_counter() - start:.1f} s")
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    worker = subprocess.Popen([sys.executable, "-m", "r1local", "worker", "--port", str(port),
                               "--threads", str(args.threads)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not reachable(endpoint):
            time.sleep(0.1)
        link = probe(endpoint, measure_bandwidth=True)
        print(f"loopback link: {link.latency_s * 1e3:.3f} ms round trip, {link.bandwidth_bps / 1e6:.0f} MB/s")
        n_layers = 28
        half = n_layers // 2 + 1  # the output head and the last 14 layers go to the worker
        results: dict[str, dict[str, list[float]]] = {"local": {"pp": [], "tg": []}, "split": {"pp": [], "tg": []}}
        ctx = max(args.pp, args.tg + 2) + 16
        for round_ in range(args.rounds):
            for kind in ("local", "split"):
                if kind == "local":
                    model = Model.load(args.model, n_ctx=ctx, n_threads=args.threads)
                else:
                    model = load_split(args.model, endpoints=[endpoint], n_ctx=ctx, n_threads=args.threads,
                                       n_gpu_layers=half, progress=print)
                with model:
                    report = run_bench(model, pp=args.pp, tg=args.tg, repetitions=2)
                results[kind]["pp"].append(report.pp_tokens_per_s.median)
                results[kind]["tg"].append(report.tg_tokens_per_s.median)
                print(f"round {round_ + 1} {kind}: pp{args.pp} {report.pp_tokens_per_s.median:.1f} tok/s, "
                      f"tg{args.tg} {report.tg_tokens_per_s.median:.1f} tok/s", flush=True)
    finally:
        worker.kill()
        worker.wait()
    for test in ("pp", "tg"):
        local, split = (statistics.median(results[k][test]) for k in ("local", "split"))
        print(f"{test}: local {local:.1f} tok/s, split over loopback RPC {split:.1f} tok/s, "
              f"ratio {split / local:.2f}x (medians of {args.rounds} alternating rounds)")


if __name__ == "__main__":
    main()
