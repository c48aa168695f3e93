"""Start an OpenAI-compatible server, drive it with N concurrent streaming clients, stop it.

The three peers (r1local serve, llama.cpp's llama-server, llama-cpp-python's server) get the same
model file, thread count, context per slot and requests: distinct prompts of the same token count
and a fixed number of greedy tokens each (end of sequence ignored), so all do equal work. Only
loopback addresses are used; every loop is bounded in count and time; servers are always stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import psutil

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Peer:
    name: str
    argv: list[str]  # the command line, without the port
    port_flag: str
    ready_path: str  # GET it until 200
    fixed_length: Callable[[int], dict]  # request fields that make it generate exactly n tokens
    model: str  # the name requests use: the file stem, as r1local serve names a file

    def variant(self, suffix: str, flags: list[str]) -> Peer:
        """The same server started with more flags, named NAME+SUFFIX."""
        return replace(self, name=f"{self.name}+{suffix}", argv=[*self.argv, *flags])


def peers(
    model: Path,
    *,
    parallel: int,
    threads: int,
    ctx_per_slot: int,
    peer_bin: Path,
    gpu_layers: int | None = None,
    rpc: str | None = None,
) -> list[Peer]:
    """The servers, each told to offload `gpu_layers` layers when given (r1local plans its own
    otherwise), to the RPC workers `rpc` (host:port,...) when given (llama-cpp-python has no RPC)."""
    py = sys.executable
    ngl = [] if gpu_layers is None else [str(gpu_layers)]
    workers = ["--rpc", rpc] if rpc else []
    return [
        Peer(
            "r1local",
            [
                py,
                "-c",
                "from r1local.cli import main; main()",
                "serve",
                str(model),
                "--host",
                HOST,
                "--parallel",
                str(parallel),
                "--threads",
                str(threads),
                "--ctx",
                str(ctx_per_slot),
                *(["--gpu-layers", *ngl] if ngl else []),
                *workers,
            ],
            "--port",
            "/health",
            _ignore_eos,
            model.stem,
        ),
        Peer(
            "llama-server",
            [
                str(peer_bin / "llama-server"),
                "-m",
                str(model),
                "--host",
                HOST,
                "-np",
                str(parallel),
                "-c",
                str(ctx_per_slot * parallel),
                "-t",
                str(threads),
                "-tb",
                str(threads),
                "--no-webui",
                "--log-disable",
                *(["-ngl", *ngl] if ngl else []),
                *workers,
            ],
            "--port",
            "/health",
            _ignore_eos,
            model.stem,
        ),
        Peer(
            "llama-cpp-python",
            # interrupt_requests off: by default a new request cuts the running stream short.
            [
                py,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--host",
                HOST,
                "--n_ctx",
                str(ctx_per_slot),
                "--n_threads",
                str(threads),
                "--n_threads_batch",
                str(threads),
                "--interrupt_requests",
                "False",
                "--model_alias",
                model.stem,
                *(["--n_gpu_layers", *ngl] if ngl else []),
            ],
            "--port",
            "/v1/models",
            lambda n: {"min_tokens": n},
            model.stem,  # min_tokens holds back EOS
        ),
    ]


def _ignore_eos(_n: int) -> dict:
    return {"ignore_eos": True}  # llama.cpp server's extension


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def peak_rss(pid: int) -> int:
    """The process's resident-memory high-water mark (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return psutil.Process(pid).memory_info().rss


def gpu_memory(pid: int) -> int | None:
    """GPU memory the process holds on NVIDIA GPUs (NVML), in bytes; None without NVML or a GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no nvidia-ml-py, no driver: nothing to report
        return None
    try:
        used = 0
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            used += sum(
                p.usedGpuMemory or 0 for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle) if p.pid == pid
            )
        return used
    finally:
        pynvml.nvmlShutdown()


@contextmanager
def running(peer: Peer, *, start_timeout: float = 180.0, log: Path | None = None):
    """Start the peer on a free loopback port; yield (base URL, pid); always stop it."""
    port = free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [*peer.argv, peer.port_flag, str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{peer.name} exited with code {proc.returncode} while starting" + (f" (log: {log})" if log else "")
                )
            try:
                if httpx.get(base + peer.ready_path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{peer.name} was not ready after {start_timeout:.0f} s")
            time.sleep(0.25)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()


@dataclass
class RequestTiming:
    start: float
    ttft: float  # seconds to the first non-empty text
    end: float
    tokens: int


@dataclass
class LoadResult:
    clients: int
    requests: int
    tokens: int
    wall_s: float
    tokens_per_s: float
    ttft_p50_s: float
    ttft_p95_s: float
    short_requests: int  # requests that returned fewer tokens than asked (unequal work)
    timings: list[RequestTiming] = field(default_factory=list, repr=False)


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


async def _one_request(client: httpx.AsyncClient, base: str, body: dict, timeout: float) -> RequestTiming:
    start = time.perf_counter()
    ttft = None
    tokens = chunks = 0
    finish = None
    route = "/v1/chat/completions" if "messages" in body else "/v1/completions"
    async with client.stream("POST", base + route, json=body, timeout=timeout) as resp:
        if resp.status_code != 200:
            detail = (await resp.aread()).decode(errors="replace")[:300]
            raise RuntimeError(f"HTTP {resp.status_code} from {base}: {detail}")
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if chunk.get("usage"):
                tokens = chunk["usage"].get("completion_tokens", tokens)
            for choice in chunk.get("choices") or []:
                finish = choice.get("finish_reason") or finish
                delta = choice.get("delta") or {}
                if choice.get("text") or delta.get("content") or delta.get("reasoning_content"):
                    chunks += 1
                    if ttft is None:
                        ttft = time.perf_counter() - start
    end = time.perf_counter()
    if not tokens:  # no usage sent: a "length" finish means every requested token came
        tokens = body["max_tokens"] if finish == "length" else chunks
    return RequestTiming(start, ttft if ttft is not None else end - start, end, tokens)


async def _drive(base: str, prompts: list[list[str]], body: dict, timeout: float, chat: bool) -> list[RequestTiming]:
    limits = httpx.Limits(max_connections=len(prompts) + 1)
    async with httpx.AsyncClient(limits=limits) as client:

        def request(prompt: str) -> dict:
            return {**body, "messages": [{"role": "user", "content": prompt}]} if chat else {**body, "prompt": prompt}

        async def client_loop(own: list[str]) -> list[RequestTiming]:
            return [await _one_request(client, base, request(p), timeout) for p in own]

        per_client = await asyncio.gather(*(client_loop(own) for own in prompts))
    return [t for timings in per_client for t in timings]


def load(
    base: str,
    peer: Peer,
    prompts: list[list[str]],
    *,
    max_tokens: int,
    timeout: float = 600.0,
    sampling: dict | None = None,
    chat: bool = False,
) -> LoadResult:
    """len(prompts) concurrent clients, each sending its prompts one after another (as raw
    completions, or as one user message each with `chat`); greedy unless `sampling` gives other
    request fields (temperature, top_k, seed)."""
    body = {
        "model": peer.model,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
        **(sampling or {}),
        **peer.fixed_length(max_tokens),
    }
    timings = asyncio.run(_drive(base, prompts, body, timeout, chat))
    wall = max(t.end for t in timings) - min(t.start for t in timings)
    tokens = sum(t.tokens for t in timings)
    ttfts = [t.ttft for t in timings]
    return LoadResult(
        clients=len(prompts),
        requests=len(timings),
        tokens=tokens,
        wall_s=wall,
        tokens_per_s=tokens / wall,
        ttft_p50_s=percentile(ttfts, 50),
        ttft_p95_s=percentile(ttfts, 95),
        short_requests=sum(t.tokens < max_tokens for t in timings),
        timings=timings,
    )
