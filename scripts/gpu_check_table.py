"""The GPU check's one table, from what scripts/gpu_check.sh left in its state folder: each stage's
outcome, `r1local bench` on each proxy, and r1local serve against llama-server at each client count.

    python scripts/gpu_check_table.py --state /tmp/r1local-gpu-check --backend cuda --seconds 512
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

STAGES = ("env", "build", "server", "proxy", "tests", "bench", "serve")
MiB = 2**20


def _read(path: Path) -> str:
    return path.read_text().strip() if path.exists() else "not reached"


def stage_lines(state: Path) -> list[str]:
    lines = ["| stage | outcome |", "|---|---|"]
    for name in STAGES:
        outcome = _read(state / "logs" / f"{name}.status")
        if name == "tests" and (log := state / "logs" / "tests.log").exists():
            last = [line for line in log.read_text().splitlines() if line.strip()]
            outcome += f": {last[-1]}" if last else ""
        lines.append(f"| {name} | {outcome} |")
    return lines


def bench_lines(state: Path) -> list[str]:
    lines = []
    for path in sorted(state.glob("bench-*.json")):
        try:
            r = json.loads(path.read_text())
        except ValueError:
            continue
        lines.append(
            f"- {path.stem.removeprefix('bench-')} proxy Q4_K_M: pp512 {r['pp_tokens_per_s']['median']:.0f} tok/s, "
            f"tg128 {r['tg_tokens_per_s']['median']:.1f} tok/s (medians of 3)"
        )
    return lines or ["- no bench figures (the stage did not finish)"]


def serve_lines(state: Path) -> list[str]:
    path = state / "serve" / "benchmarks.json"
    if not path.exists():
        return ["no serving figures (the stage did not finish)"]
    rows = [row for model in json.loads(path.read_text())["models"] for row in model.get("serve", [])]
    by = {(r["peer"], r["clients"]): r for r in rows}
    lines = [
        "| clients | r1local tok/s | llama-server tok/s | ratio | TTFT p50 r1local / llama-server | "
        "VRAM MiB r1local / llama-server |",
        "|---|---|---|---|---|---|",
    ]
    for clients in sorted({c for _, c in by}):
        ours, theirs = by.get(("r1local", clients)), by.get(("llama-server", clients))
        if not (ours and theirs):
            continue
        vram = " / ".join(
            f"{r['vram_bytes'] / MiB:.0f}" if r.get("vram_bytes") is not None else "-" for r in (ours, theirs)
        )
        lines.append(
            f"| {clients} | {ours['tokens_per_s']:.1f} | {theirs['tokens_per_s']:.1f} | "
            f"{ours['tokens_per_s'] / theirs['tokens_per_s']:.2f}x | "
            f"{ours['ttft_p50_s']:.3f} / {theirs['ttft_p50_s']:.3f} s | {vram} |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--backend", default="cuda")
    ap.add_argument("--seconds", type=int, default=0, help="the whole run's time")
    args = ap.parse_args()
    steps = args.state / "logs"
    device = _read(steps / "device.txt") if (steps / "device.txt").exists() else platform.processor() or "CPU"
    print(
        "\n".join(
            [
                f"# GPU check ({args.backend}): {device}, {args.seconds} s in all",
                "",
                *stage_lines(args.state),
                "",
                "## r1local bench, every layer on the device",
                "",
                *bench_lines(args.state),
                "",
                "## Serving side by side, 1.5B proxy, 128 tokens per request",
                "",
                *serve_lines(args.state),
            ]
        )
    )


if __name__ == "__main__":
    main()
