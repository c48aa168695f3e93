"""Time to first answer token of `r1local run`, as a user waits for it: from starting the command
to the first byte of the answer, with the model loaded in the command's own process versus
answered by a running `r1local serve` that already holds it. Runs alternate; prints medians.

    python scripts/measure_resident_ttft.py models/tiny-r1-qwen.gguf --runs 5
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx


def first_byte_seconds(args: list[str], env: dict) -> float:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "r1local", "run", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    proc.stdout.read(1)
    took = time.monotonic() - started
    proc.wait()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a .gguf file")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    opts = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "R1LOCAL_URL": url}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "r1local",
            "serve",
            str(opts.model),
            "--port",
            str(port),
            "--threads",
            str(opts.threads),
            "--ctx",
            "2048",
            "--keep-alive",
            "-1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        common = ["hi", "--no-think", "--max-tokens", "4", "--temperature", "0"]
        local_args = [str(opts.model), *common, "--local", "--threads", str(opts.threads), "--ctx", "2048"]
        resident_args = [opts.model.stem, *common]
        local, resident = [], []
        for _ in range(opts.runs):
            local.append(first_byte_seconds(local_args, env))
            resident.append(first_byte_seconds(resident_args, env))
    finally:
        server.terminate()
        server.wait()
    m_local, m_resident = statistics.median(local), statistics.median(resident)
    print(f"model {opts.model.name}, {opts.runs} alternating runs each, first answer byte after start:")
    print(f"  loaded in the command:  median {m_local:.2f} s  ({', '.join(f'{x:.2f}' for x in local)})")
    print(f"  resident r1local serve: median {m_resident:.2f} s  ({', '.join(f'{x:.2f}' for x in resident)})")
    print(f"  resident / in-process: {m_resident / m_local:.2f}")


if __name__ == "__main__":
    main()
