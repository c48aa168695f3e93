"""A model split over an RPC worker: r1local next to llama.cpp's own llama-server, and what the split
costs against this machine alone.

One `r1local worker` (llama.cpp's rpc-server, built from the llama.cpp our engine runs) on loopback
holds the output head and the last half of the layers of the 1.5B proxy. Four servers take the same
streamed requests in turn: r1local serve and llama-server (built with -DGGML_RPC=ON from the same
sources) each over the worker with the same --gpu-layers, and each on this machine alone. The order
rotates every round; figures are medians over the rounds; the same threads on every side.

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

import bench_servers
import build_peers
from bench_compare import prompts_for

from r1local.gguf_meta import read_gguf
from r1local.rpc import build
from r1local.rpc.probe import probe, reachable

ROOT = Path(__file__).resolve().parent.parent
LINEUP = ("r1local split", "llama-server split", "r1local local", "llama-server local")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "proxy-r1-qwen-1.5b-q4_k_m.gguf")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="threads of each side (the worker's too)")
    parser.add_argument("--clients", default="1,4", help="concurrent clients, comma-separated")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--prompt-words", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=2, help="compile jobs for llama-server")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    layers = read_gguf(args.model).metadata[f"{read_gguf(args.model).architecture}.block_count"]
    offloaded = layers // 2 + 1  # the output head and the last half of the layers go to the worker

    build.ensure_built(print)
    peer_bin = build_peers.build(build_peers.installed_version(), args.jobs, "-DGGML_RPC=ON")
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "r1local", "worker", "--port", str(port), "--threads", str(args.threads)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runs: dict[tuple[int, str], list[bench_servers.LoadResult]] = {}
    try:
        deadline = time.monotonic() + 60
        while not reachable(endpoint):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the worker did not start")
            time.sleep(0.1)
        link = probe(endpoint, measure_bandwidth=True)
        print(
            f"loopback link: {link.latency_s * 1e3:.3f} ms round trip, {link.bandwidth_bps / 1e6:.0f} MB/s; "
            f"{offloaded} of {layers + 1} layers (the head included) on the worker"
        )
        for round_ in range(args.rounds):
            for clients in levels:
                ctx = args.prompt_words * 2 + args.max_tokens + 64
                common = dict(parallel=clients, threads=args.threads, ctx_per_slot=ctx, peer_bin=peer_bin)
                split = bench_servers.peers(args.model, gpu_layers=offloaded, rpc=endpoint, **common)[:2]
                local = bench_servers.peers(args.model, **common)[:2]
                lineup = dict(zip(LINEUP, [*split, *local], strict=True))
                prompts = prompts_for(clients, 2, args.prompt_words, seed=clients)
                shift = round_ % len(LINEUP)
                for name in LINEUP[shift:] + LINEUP[:shift]:
                    peer = lineup[name]
                    with bench_servers.running(peer) as (base, _pid):
                        bench_servers.load(base, peer, prompts_for(1, 1, 8, seed=99), max_tokens=4)  # warm-up
                        result = bench_servers.load(base, peer, prompts, max_tokens=args.max_tokens)
                    runs.setdefault((clients, name), []).append(result)
                    print(
                        f"round {round_ + 1}, {clients} client(s), {name}: {result.tokens_per_s:.2f} tok/s, "
                        f"TTFT p50 {result.ttft_p50_s:.2f} s"
                        + (f", {result.short_requests} short requests" if result.short_requests else ""),
                        flush=True,
                    )
    finally:
        worker.kill()
        worker.wait()

    def median(clients: int, name: str) -> float:
        return statistics.median(r.tokens_per_s for r in runs[clients, name])

    print(
        f"\n| clients | {' | '.join(LINEUP)} | r1local / llama-server (split) | split / local (r1local) "
        f"| split / local (llama-server) |"
    )
    print("|---:|" + "---:|" * (len(LINEUP) + 3))
    for clients in levels:
        tps = {name: median(clients, name) for name in LINEUP}
        print(
            f"| {clients} | "
            + " | ".join(f"{tps[n]:.2f}" for n in LINEUP)
            + f" | {tps['r1local split'] / tps['llama-server split']:.2f}x"
            + f" | {tps['r1local split'] / tps['r1local local']:.2f}x"
            + f" | {tps['llama-server split'] / tps['llama-server local']:.2f}x |"
        )
    print(
        f"(generated tokens/s over each run's wall time, streamed, {args.max_tokens} tokens per request; "
        f"medians of {args.rounds} rotating rounds)"
    )


if __name__ == "__main__":
    main()
