"""Several PCs, one model: llama.cpp's RPC backend. `r1local worker` runs llama.cpp's rpc-server on
each helper machine; `--rpc host:port,...` makes the engine add their devices and the fit plan
layers across this machine and them. See build.py (the pieces), probe.py (asking a worker),
plan.py (the split), engine.py (the model behind a child process)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import UsageError
from .probe import WorkerInfo, parse_endpoint, probe


def parse_endpoints(text: str | None) -> list[str]:
    """"a:1,b:2" -> ["a:1", "b:2"], with a clear error for anything else."""
    endpoints = [item.strip() for item in (text or "").split(",") if item.strip()]
    for endpoint in endpoints:
        try:
            parse_endpoint(endpoint)
        except ValueError:
            raise UsageError(f"--rpc: {endpoint!r} is not host:port.", "Example: --rpc 192.168.1.20:50052,192.168.1.21:50052") from None
    if len(set(endpoints)) != len(endpoints):
        raise UsageError("--rpc names a worker twice.", "List each worker once.")
    return endpoints


def probe_all(endpoints: list[str], *, measure_bandwidth: bool = True) -> list[WorkerInfo]:
    """Every worker's devices and link, or one line naming the first that is down."""
    return [probe(e, measure_bandwidth=measure_bandwidth) for e in endpoints]


def load_split(path: str | Path, *, endpoints: list[str], name: str | None = None, n_ctx: int | None = None,
               n_parallel: int = 1, n_gpu_layers: int | None = None, n_threads: int | None = None,
               max_queue: int | None = None, progress: Callable[[str], None] = lambda _line: None, **_ignored):
    """Model.load's counterpart for a model spread over RPC workers (same keywords)."""
    from .. import config, fit
    from ..gguf_meta import read_gguf
    from ..hardware import detect_live
    from . import build
    from .engine import SplitModel
    from .plan import plan_split

    path = Path(path).expanduser()
    workers = probe_all(endpoints)
    build.ensure_built(progress)
    shape = fit.ModelShape.from_gguf(read_gguf(path))
    ctx = min(n_ctx or config.DEFAULT_CTX, shape.trained_ctx)
    plan = plan_split(shape, detect_live(), workers, n_ctx=ctx, n_parallel=n_parallel, gpu_layers=n_gpu_layers)
    progress(f"Layers: {plan.layout()}")
    return SplitModel(path, plan, name=name, n_parallel=n_parallel, n_threads=n_threads, max_queue=max_queue)
