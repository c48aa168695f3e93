"""Several PCs, one model: llama.cpp's RPC backend. `r1local worker` runs llama.cpp's rpc-server on
each helper machine; `--rpc host:port,...` makes the engine add their devices and the fit plan
layers across this machine and them. See build.py (the pieces), probe.py (asking a worker),
plan.py (the split), engine.py (the model behind a child process)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..errors import Cancelled, UsageError
from .probe import WorkerInfo, parse_endpoint, probe, reachable


def parse_endpoints(text: str | None) -> list[str]:
    """ "a:1,b:2" -> ["a:1", "b:2"], with a clear error for anything else."""
    endpoints = [item.strip() for item in (text or "").split(",") if item.strip()]
    for endpoint in endpoints:
        try:
            parse_endpoint(endpoint)
        except ValueError:
            raise UsageError(
                f"--rpc: {endpoint!r} is not host:port.", "Example: --rpc 192.168.1.20:50052,192.168.1.21:50052"
            ) from None
    if len(set(endpoints)) != len(endpoints):
        raise UsageError("--rpc names a worker twice.", "List each worker once.")
    return endpoints


def worker_status(endpoints: tuple[str, ...], models: list) -> list[dict]:
    """For /health: a worker a live split model is using is up; any other is asked with a bare
    connect (a worker serves one client at a time, so a busy one is never probed further)."""
    in_use = {e for m in models if not getattr(m, "lost", True) for e in m.endpoints}
    return [{"endpoint": e, "status": "up" if e in in_use or reachable(e) else "down"} for e in endpoints]


def probe_all(endpoints: list[str], *, measure_bandwidth: bool = True) -> list[WorkerInfo]:
    """Every worker's devices and link, or one line naming the first that is down."""
    return [probe(e, measure_bandwidth=measure_bandwidth) for e in endpoints]


def load_split(
    path: str | Path,
    *,
    endpoints: list[str],
    name: str | None = None,
    n_ctx: int | None = None,
    n_parallel: int = 1,
    n_gpu_layers: int | None = None,
    tensor_split: list[float] | None = None,
    n_threads: int | None = None,
    max_queue: int | None = None,
    kv_type: str | None = None,
    speculation=None,
    progress: Callable[[str], None] | None = None,
    abort: Callable[[], bool] | None = None,
    plan: object = None,
):
    """Model.load's counterpart for a model spread over RPC workers (same keywords, none swallowed;
    `plan`, this machine's fit alone, gives way to the split's own). abort: asked between the steps
    and while the child process loads; True stops the load (Cancelled)."""
    from .. import config, fit
    from ..gguf_meta import read_gguf
    from ..hardware import detect_live
    from . import build
    from .engine import SplitModel
    from .plan import plan_split

    progress = progress or logging.getLogger("r1local.rpc").info
    stop = abort or (lambda: False)
    path = Path(path).expanduser()
    workers = probe_all(endpoints)
    _check(stop, path)
    build_dir = build.ensure_built(progress)
    _check(stop, path)
    shape = fit.ModelShape.from_gguf(read_gguf(path))
    ctx = min(n_ctx or config.DEFAULT_CTX, shape.trained_ctx)
    split = plan_split(
        shape,
        detect_live(),
        workers,
        n_ctx=ctx,
        n_parallel=n_parallel,
        gpu_layers=n_gpu_layers,
        tensor_split=tensor_split,
    )
    speed = "?" if split.decode_tps is None else f"{split.decode_tps:.1f}"
    progress(f"{path.stem} over RPC: layers {split.layout()}; about {speed} tokens/s (estimate; {split.link})")
    return SplitModel(
        path,
        split,
        build_dir,
        name=name,
        n_parallel=n_parallel,
        n_threads=n_threads,
        max_queue=max_queue,
        kv_type=kv_type,
        speculation=speculation,
        abort=stop,
    )


def _check(abort: Callable[[], bool], path: Path) -> None:
    if abort():
        raise Cancelled(f"The load of {path.stem} over RPC was stopped.")
