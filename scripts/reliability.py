"""A reliability run against a real `r1local serve`, printed as one table:

- fuzzing: schemathesis generates requests from the served OpenAPI document (valid and invalid),
  bounded in examples per operation and in time; no 5xx, and every response must match the document
  (status, content type, headers, body schema);
- soak: a few clients chat without pause while the server's resident memory is sampled;
- disconnect storm: many clients start a stream and vanish; every slot must come free;
- queue overflow: more clients than slots and queue places; the excess gets 503 with Retry-After,
  nobody hangs.

    python scripts/reliability.py                      # the tiny test model, about two minutes
    python scripts/reliability.py --model r1:1.5b --fuzz-examples 200 --fuzz-seconds 900 --soak-seconds 600

Needs the `test` extra (schemathesis, and gguf to build the tiny model); tests/test_reliability.py
runs a short version of it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


@dataclass
class Row:
    check: str
    ok: bool
    detail: str


@dataclass
class Server:
    url: str
    model: str
    process: psutil.Process
    parallel: int
    max_queue: int

    def rss(self) -> int:
        return self.process.memory_info().rss

    def gauge(self, name: str) -> float:
        for line in httpx.get(f"{self.url}/metrics").text.splitlines():
            if line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@contextmanager
def serve(model: str, *, parallel: int, max_queue: int, ctx: int, threads: int) -> Iterator[Server]:
    """`r1local serve MODEL` on a free loopback port, with a home and cache of its own and the Hub
    out of reach (fuzzed pulls answer at once)."""
    with tempfile.TemporaryDirectory(prefix="r1local-reliability-") as tmp:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "R1LOCAL_HOME": f"{tmp}/home", "HF_HUB_OFFLINE": "1"}
        env.pop("R1LOCAL_API_KEY", None)
        if Path(model).is_file():
            env["HF_HUB_CACHE"] = f"{tmp}/hf"
        cmd = [
            sys.executable,
            "-m",
            "r1local",
            "serve",
            model,
            "--port",
            str(port),
            "--parallel",
            str(parallel),
            "--max-queue",
            str(max_queue),
            "--ctx",
            str(ctx),
            "--threads",
            str(threads),
        ]
        log = open(f"{tmp}/serve.log", "wb")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while not _healthy(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"serve did not start:\n{Path(f'{tmp}/serve.log').read_text()}")
                time.sleep(0.2)
            name = Path(model).stem if Path(model).is_file() else model
            yield Server(url, name, psutil.Process(proc.pid), parallel, max_queue)
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health").status_code == 200
    except httpx.TransportError:
        return False


def fuzz(server: Server, examples: int, seconds: int) -> Row:
    """schemathesis over the served document, its conformance checks, a JSON report read back."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            str(Path(sys.executable).with_name("st")),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            ",".join(CONFORMANCE),
            "--max-examples",
            str(examples),
            "--max-time",
            str(seconds),
            # one worker: on CPython 3.11.7 ast.parse in two threads at once (hypothesis describing
            # its strategies for free-form JSON fields) fails with "AST constructor recursion depth mismatch"
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--generation-database",
            "none",
            "--no-shrink",
            "--no-color",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300, cwd=tmp)
        if not report.is_file():
            return Row("fuzzing (schemathesis)", False, f"no report: {run.stdout[-500:]}{run.stderr[-500:]}")
        result = json.loads(report.read_text())
    cases = result["test_cases"]["generated"]
    failures = {f"{f['title']} ({', '.join(f['operations'])})": f["count"] for f in result["failures"]}
    server_errors = sum(f["count"] for f in result["failures"] if f["type"] == "ServerError")
    errors = [e.get("message", str(e))[:120] for e in result["errors"]]
    ok = not failures and not errors and result["operations"]["tested"] > 0
    detail = (
        f"{cases} cases over {result['operations']['tested']} operations in {result['running_time']:.0f} s; "
        f"5xx: {server_errors}; conformance failures: {sum(failures.values())}"
    )
    if failures or errors:
        detail += " - " + "; ".join([*failures, *errors])
    return Row("fuzzing (schemathesis)", ok, detail)


def chat(server: Server, client: httpx.Client, max_tokens: int, stream: bool) -> int:
    body = {
        "model": server.model,
        "messages": [{"role": "user", "content": "Count to ten."}],
        "max_tokens": max_tokens,
        "stream": stream,
    }
    if not stream:
        return client.post(f"{server.url}/v1/chat/completions", json=body).status_code
    with client.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
        for _ in response.iter_lines():
            pass
        return response.status_code


def soak(server: Server, seconds: float, clients: int) -> Row:
    """`clients` clients chat back to back for `seconds` after a warm-up; RSS is sampled every half
    second, and the last quarter of the samples may not exceed the first by 5% (or 16 MiB)."""
    samples: list[int] = []
    statuses: list[int] = []
    stop = threading.Event()

    def client_loop(i: int) -> None:
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                statuses.append(chat(server, client, 16, stream=bool(i % 2)))

    def sample() -> None:
        while not stop.is_set():
            samples.append(server.rss())
            time.sleep(0.5)

    with ThreadPoolExecutor(clients) as pool, httpx.Client(timeout=120) as warm:  # warm up every slot first
        list(pool.map(lambda i: chat(server, warm, 16, stream=bool(i % 2)), range(clients)))
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    threads.append(threading.Thread(target=sample))
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    errors = sum(status != 200 for status in statuses)
    quarter = max(1, len(samples) // 4)  # first and last quarter: growth beyond warm-up
    early, late = statistics.median(samples[:quarter]), statistics.median(samples[-quarter:])
    growth = (late - early) / early
    ok = errors == 0 and bool(statuses) and late - early < max(0.05 * early, 16 * 2**20)
    mib = 2**20
    return Row(
        f"soak ({clients} clients, {seconds:.0f} s)",
        ok,
        f"{len(statuses)} requests, {errors} errors; RSS {early / mib:.0f} -> {late / mib:.0f} MiB "
        f"(peak {max(samples) / mib:.0f}, {growth:+.1%})",
    )


def disconnect_storm(server: Server, clients: int) -> Row:
    """`clients` streams that vanish after their first token, as many at once as the server admits;
    then every slot must be free again."""

    def vanish(_: int) -> bool:
        body = {
            "model": server.model,
            "messages": [{"role": "user", "content": "Go on."}],
            "max_tokens": 100000,
            "stream": True,
        }
        try:
            with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=120) as response:
                if response.status_code != 200:
                    return False
                for line in response.iter_lines():
                    if "content" in line:
                        return True  # leaving the block closes the connection mid-stream
        except httpx.HTTPError:
            pass
        return False

    with ThreadPoolExecutor(server.parallel + server.max_queue) as pool:
        streamed = sum(pool.map(vanish, range(clients)))
    started = time.monotonic()
    while server.gauge("r1local_busy_slots") or server.gauge("r1local_queue_depth"):
        if time.monotonic() - started > 30:
            break
        time.sleep(0.05)
    freed_s = time.monotonic() - started
    busy = server.gauge("r1local_busy_slots")
    with httpx.Client(timeout=60) as client:
        after = chat(server, client, 4, stream=False)
    ok = busy == 0 and after == 200 and streamed == clients
    return Row(
        f"disconnect storm ({clients} clients)",
        ok,
        f"{streamed} streamed then left; every slot free {freed_s:.1f} s after the last; next request {after}",
    )


def overflow(server: Server) -> Row:
    """Twice as many long requests as slots and queue places together: 503 + Retry-After for the
    excess, at once; the others complete."""
    n = 2 * (server.parallel + server.max_queue)
    gate = threading.Barrier(n)

    def one(_: int) -> tuple[int, str | None, float]:
        gate.wait()
        started = time.monotonic()
        body = {
            "model": server.model,
            "messages": [{"role": "user", "content": "Go on."}],
            "max_tokens": 256,
            "ignore_eos": True,
        }
        response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=300)
        return response.status_code, response.headers.get("retry-after"), time.monotonic() - started

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    refused = [r for r in results if r[0] == 503]
    served = [r for r in results if r[0] == 200]
    ok = (
        len(served) + len(refused) == n
        and all(r[1] for r in refused)
        and len(refused) >= n - server.parallel - server.max_queue
        and all(r[2] < 5 for r in refused)
    )
    slowest = max((r[2] for r in refused), default=0.0)
    return Row(
        f"queue overflow ({n} clients, {server.parallel} slots + {server.max_queue} queued)",
        ok,
        f"{len(served)} served, {len(refused)} got 503 with Retry-After (slowest refusal {slowest:.2f} s)",
    )


def table(rows: list[Row]) -> str:
    lines = ["| check | result | detail |", "|---|---|---|"]
    lines += [f"| {r.check} | {'pass' if r.ok else 'FAIL'} | {r.detail} |" for r in rows]
    return "\n".join(lines)


def run(
    model: str,
    *,
    fuzz_examples: int,
    fuzz_seconds: int,
    soak_seconds: float,
    soak_clients: int,
    storm_clients: int,
    ctx: int = 2048,
    threads: int = 1,
    log: Callable[[str], None] = print,
) -> list[Row]:
    rows: list[Row] = []
    with serve(model, parallel=2, max_queue=2, ctx=ctx, threads=threads) as server:
        for name, step in (
            ("fuzzing", lambda: fuzz(server, fuzz_examples, fuzz_seconds)),
            ("soak", lambda: soak(server, soak_seconds, soak_clients)),
            ("disconnect storm", lambda: disconnect_storm(server, storm_clients)),
            ("queue overflow", lambda: overflow(server)),
        ):
            log(f"{name}...")
            rows.append(step())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model name or .gguf path (default: the tiny test model)")
    parser.add_argument("--fuzz-examples", type=int, default=30, help="schemathesis cases per operation")
    parser.add_argument("--fuzz-seconds", type=int, default=60, help="time budget of the fuzzing")
    parser.add_argument("--soak-seconds", type=float, default=30)
    parser.add_argument("--soak-clients", type=int, default=4)
    parser.add_argument("--storm-clients", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    model = args.model
    if model is None:
        sys.path.insert(0, str(ROOT / "scripts"))
        from make_tiny_model import build_tiny_model

        model = str(build_tiny_model(ROOT / "models" / "tiny-r1-qwen.gguf", seed=0))
    rows = run(
        model,
        fuzz_examples=args.fuzz_examples,
        fuzz_seconds=args.fuzz_seconds,
        soak_seconds=args.soak_seconds,
        soak_clients=args.soak_clients,
        storm_clients=args.storm_clients,
        threads=args.threads,
        log=lambda line: print(line, file=sys.stderr),
    )
    print(table(rows))
    sys.exit(0 if all(r.ok for r in rows) else 1)


if __name__ == "__main__":
    main()
