"""Turn bench_compare's figures into ratios against the targets, a markdown table and a plot."""

from __future__ import annotations

from pathlib import Path

PEERS = ("r1local", "llama-server", "llama-cpp-python")

# (ratio name, target, True when the ratio must be at least the target, False: at most)
TARGETS = {
    "decode_vs_llama_bench": (0.97, True),
    "prefill_vs_llama_bench": (0.95, True),
    "tokens_per_s_vs_llama_server": (1.0, True),  # at 4 and 8 clients
    "tokens_per_s_vs_llama_cpp_python": (2.0, True),  # at 4 and 8 clients
    "ttft_p50_vs_llama_server": (1.0, False),  # at 4 clients
    "peak_rss_vs_llama_server": (1.05, False),
}
TARGET_CLIENTS = {
    "tokens_per_s_vs_llama_server": (4, 8),
    "tokens_per_s_vs_llama_cpp_python": (4, 8),
    "ttft_p50_vs_llama_server": (4,),
}
# Not r1local's: what llama.cpp's own batching gains over one-request-at-a-time on this machine, the
# ceiling for any engine that runs at llama.cpp's speed.
CEILING = "llama_server_vs_llama_cpp_python"


def _serve(entry: dict, peer: str, clients: int) -> dict | None:
    return next((r for r in entry.get("serve", []) if r["peer"] == peer and r["clients"] == clients), None)


def ratios(entry: dict) -> dict:
    """r1local / peer for every figure both have; keys as in TARGETS, per client count where it applies."""
    out: dict = {}
    ours, theirs = entry.get("r1local_bench"), entry.get("llama_bench")
    if ours and theirs:
        out["decode_vs_llama_bench"] = ours["tg128"] / theirs["tg128"]
        out["prefill_vs_llama_bench"] = ours["pp512"] / theirs["pp512"]
    for clients in sorted({r["clients"] for r in entry.get("serve", [])}):
        server, python_server = _serve(entry, "llama-server", clients), _serve(entry, "llama-cpp-python", clients)
        if server and python_server:
            out.setdefault(CEILING, {})[clients] = server["tokens_per_s"] / python_server["tokens_per_s"]
        mine = _serve(entry, "r1local", clients)
        if not mine:
            continue
        for peer, suffix in (("llama-server", "llama_server"), ("llama-cpp-python", "llama_cpp_python")):
            other = _serve(entry, peer, clients)
            if not other:
                continue
            out.setdefault(f"tokens_per_s_vs_{suffix}", {})[clients] = mine["tokens_per_s"] / other["tokens_per_s"]
            if peer == "llama-server":
                out.setdefault("ttft_p50_vs_llama_server", {})[clients] = mine["ttft_p50_s"] / other["ttft_p50_s"]
                out.setdefault("peak_rss_vs_llama_server", {})[clients] = (
                    mine["peak_rss_bytes"] / other["peak_rss_bytes"]
                )
    return out


def verdict(name: str, value: float) -> str:
    target, at_least = TARGETS[name]
    ok = value >= target if at_least else value <= target
    return "met" if ok else "**missed**"


def _target_text(name: str) -> str:
    target, at_least = TARGETS[name]
    return f"{'≥' if at_least else '≤'} {target:g}"


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "## Performance",
        "",
        "Reproduce with `pip install -e '.[bench]' && python scripts/bench_compare.py --publish` "
        "(builds llama.cpp's llama-bench, llama-server and llama-batched-bench once, about 15 minutes on 2 cores, then measures).",
        "",
        f"Measured on {m['cores']} CPU cores ({m['cpu']}), {m['threads']} threads for every peer, "
        f"llama-cpp-python {m['llama_cpp_python']} (llama-bench and llama-server built from the "
        "llama.cpp it vendors). Greedy, fixed-length generation; ratios are r1local / peer.",
        "",
    ]
    s = results["settings"]
    for entry in results["models"]:
        lines += [f"### {entry['file']} ({entry['size_bytes'] / 2**30:.2f} GiB)", ""]
        r = entry["ratios"]
        if "r1local_bench" in entry:
            ours, theirs = entry["r1local_bench"], entry["llama_bench"]
            lines += ["| single stream | r1local | llama-bench | ratio | target |", "|---|---:|---:|---:|---|"]
            for test, key in (
                ("pp512 (prefill) tok/s", "prefill_vs_llama_bench"),
                ("tg128 (decode) tok/s", "decode_vs_llama_bench"),
            ):
                fig = test[:5]
                lines.append(
                    f"| {test} | {ours[fig]:.1f} | {theirs[fig]:.1f} | {r[key]:.2f} | "
                    f"{_target_text(key)}: {verdict(key, r[key])} |"
                )
            lines.append("")
        if entry.get("serve"):
            lines += [
                f"Concurrent streaming clients ({s['prompt_tokens']}-word prompts, "
                f"{s['max_tokens']} tokens each; medians of {s.get('serve_rounds', 1)} alternating rounds):",
                "",
                "| clients | server | tokens/s | TTFT p50 | TTFT p95 | peak RSS |",
                "|---:|---|---:|---:|---:|---:|",
            ]
            for row in entry["serve"]:
                short = f" ({row['short_requests']} short)" if row["short_requests"] else ""
                lines.append(
                    f"| {row['clients']} | {row['peer']} | {row['tokens_per_s']:.1f}{short} | "
                    f"{row['ttft_p50_s']:.2f} s | {row['ttft_p95_s']:.2f} s | "
                    f"{row['peak_rss_bytes'] / 2**20:.0f} MiB |"
                )
            lines.append("")
            per_n = [k for k in TARGETS if isinstance(r.get(k), dict)]
            if per_n:
                levels = sorted({n for k in per_n for n in r[k]})
                lines += [
                    "| r1local / peer | " + " | ".join(f"{n} clients" for n in levels) + " | target |",
                    "|---|" + "---:|" * len(levels) + "---|",
                ]
                for key in per_n:
                    cells = []
                    for n in levels:
                        v = r[key].get(n)
                        judged = n in TARGET_CLIENTS.get(key, levels)
                        cells.append("" if v is None else f"{v:.2f}" + (f" ({verdict(key, v)})" if judged else ""))
                    lines.append(f"| {key.replace('_', ' ')} | " + " | ".join(cells) + f" | {_target_text(key)} |")
                if CEILING in r:
                    cells = [f"{r[CEILING][n]:.2f}" if n in r[CEILING] else "" for n in levels]
                    lines.append(
                        "| *for reference: llama-server / llama-cpp-python* | "
                        + " | ".join(cells)
                        + " | what llama.cpp's batching gains here |"
                    )
                lines.append("")
    if any(e.get("serve") for e in results["models"]):
        lines += ["![Aggregate tokens/s against concurrent clients](benchmarks.png)", ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [e for e in results["models"] if e.get("serve")]
    if not entries:
        return
    fig, axes = plt.subplots(1, len(entries), figsize=(5.5 * len(entries), 4), squeeze=False)
    for ax, entry in zip(axes[0], entries, strict=True):
        for peer in PEERS:
            rows = sorted((r for r in entry["serve"] if r["peer"] == peer), key=lambda r: r["clients"])
            if rows:
                ax.plot([r["clients"] for r in rows], [r["tokens_per_s"] for r in rows], marker="o", label=peer)
        if "llama_bench" in entry:
            ax.axhline(entry["llama_bench"]["tg128"], color="grey", linestyle=":", label="llama-bench tg128")
        clients = sorted({r["clients"] for r in entry["serve"]})
        ax.set_xticks(clients)
        ax.set_xlabel("concurrent streaming clients")
        ax.set_ylabel("aggregate tokens/s")
        ax.set_title(entry["file"], fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Throughput against concurrency ({results['machine']['threads']} threads)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
