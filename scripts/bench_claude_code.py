"""Claude Code (`claude -p`) against r1local and llama-server side by side: wall time of one print-mode
run with its answer capped by CLAUDE_CODE_MAX_OUTPUT_TOKENS, on the same GGUF (Gemma 3 270M Q4_K_M by
default), threads and context, each server started fresh for each run, the servers alternating
round by round. Prints every run, the medians and the ratio r1local / llama-server.

For a DeepSeek-R1 model a third server runs: llama-server with llama.cpp's own R1 tool template
(models/templates/llama-cpp-deepseek-r1.jinja, what llama.cpp's docs/function-calling.md prescribes
for R1). The R1 distills' built-in template never renders the tool list, so plain llama-server sends
the model Claude Code's messages without its ~16,000 tokens of tool descriptions; r1local renders
them as that template does, and so does "llama-server+r1-tools": the like-for-like comparison.

    python scripts/bench_claude_code.py [--rounds 3] [--llama-server BIN] [--model GGUF]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_compare  # noqa: E402
import bench_servers  # noqa: E402
import llama_server_suite  # noqa: E402

from r1local.engine.tools import speaks_r1_tools  # noqa: E402
from r1local.gguf_meta import read_gguf  # noqa: E402

PROMPT = "Say hello"


def claude_run(base: str, model: str, max_output: int, home: Path) -> tuple[float, bool, str]:
    """Seconds one `claude -p` took, whether it ended with its own output-maximum message, its last line."""
    env = {
        **os.environ,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base,
        "ANTHROPIC_API_KEY": "unused",
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(max_output),
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    started = time.monotonic()
    done = subprocess.run(
        ["claude", "-p", PROMPT], env=env, cwd=home, capture_output=True, text=True, timeout=900, check=False
    )
    seconds = time.monotonic() - started
    said = (done.stdout + done.stderr).strip()
    return seconds, f"exceeded the {max_output} output token maximum" in said, said.splitlines()[-1] if said else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--llama-server", type=Path, help="the llama-server binary (default: a built peer)")
    parser.add_argument("--model", type=Path, help="the GGUF (default: Gemma 3 270M Q4_K_M)")
    parser.add_argument("--ctx", type=int, default=32768, help="context (Claude Code's prompt is ~20,000 tokens)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-output", type=int, default=64)
    parser.add_argument("--log-dir", type=Path, help="keep each server's log here")
    args = parser.parse_args()
    if shutil.which("claude") is None:
        sys.exit("claude is not installed: npm install -g @anthropic-ai/claude-code")
    binary = args.llama_server or llama_server_suite.find_llama_server()
    if binary is None:
        sys.exit("no llama-server binary found (scripts/build_peers.py builds one)")
    model = args.model or bench_compare.gemma_model()
    servers = {
        peer.name: peer
        for peer in bench_servers.peers(
            model, parallel=1, threads=args.threads, ctx_per_slot=args.ctx, peer_bin=binary.parent
        )
        if peer.name in ("r1local", "llama-server")
    }
    r1_template = binary.parent.parent / "llama.cpp" / "models" / "templates" / "llama-cpp-deepseek-r1.jinja"
    if speaks_r1_tools(read_gguf(model).chat_template or "") and r1_template.is_file():
        servers["llama-server+r1-tools"] = servers["llama-server"].variant(
            "r1-tools", ["--jinja", "--chat-template-file", str(r1_template)]
        )
    times: dict[str, list[float]] = {name: [] for name in servers}
    for round_ in range(args.rounds):
        order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
        for name in order:
            log = args.log_dir / f"{name}-{round_}.log" if args.log_dir else None
            with tempfile.TemporaryDirectory(prefix="claude-home-") as home:
                with bench_servers.running(servers[name], log=log) as (base, _pid):
                    seconds, ended, last = claude_run(base, servers[name].model, args.max_output, Path(home))
            if ended:  # a run that failed early proves nothing about speed
                times[name].append(seconds)
            print(f"round {round_ + 1} {name:21} {seconds:7.1f} s  {'ok' if ended else 'NOT ENDED: ' + last[:120]}")
    for name, values in times.items():
        print(f"median {name:21} " + (f"{statistics.median(values):7.1f} s" if values else "    -   (no run ended)"))
    for peer in (name for name in servers if name != "r1local"):
        if times["r1local"] and len(times["r1local"]) == len(times[peer]) == args.rounds:
            ratio = statistics.median(times["r1local"]) / statistics.median(times[peer])
            print(f"ratio r1local / {peer}: {ratio:.2f}")


if __name__ == "__main__":
    main()
