"""The one door every model is opened through: `open(address, path, options)` for llama.cpp,
OpenVINO, a split over RPC workers and a model of a fronted upstream server. Every option a load
takes is one field of `LoadOptions`, handed to each loader that can use it, so none is lost between
paths (an abort reaches the split loader as it reaches llama.cpp's).

A model name may choose the engine (`r1:7b@openvino`, see names.py); without it an OpenVINO IR
folder (r1:1.5b-npu) loads on OpenVINO and a GGUF on llama.cpp.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .base import Engine

if TYPE_CHECKING:
    from ..names import ModelAddress
    from .upstream import Upstream


@dataclass(frozen=True)
class LoadOptions:
    name: str | None = None  # what the model is served as
    n_ctx: int | None = None  # None: the fit's choice
    n_parallel: int = 1
    n_gpu_layers: int | None = None
    tensor_split: Sequence[float] | None = None
    n_threads: int | None = None
    max_queue: int | None = None
    kv_type: str | None = None
    speculation: Any = None  # engine.speculative.Speculation
    plan: Any = None  # this machine's fit plan (fit.FitPlan), checked against live memory
    rpc: Sequence[str] = ()  # RPC workers to spread a GGUF model over
    abort: Callable[[], bool] | None = None  # asked while loading; True stops the load (Cancelled)
    on_compile: Callable[[Any], None] | None = None  # told before OpenVINO's first (slow) compile
    progress: Callable[[str], None] | None = None  # the RPC split's steps, one line each


def open(
    address: ModelAddress, path: Path | None, options: LoadOptions, upstreams: Mapping[str, Upstream] | None = None
) -> Engine:
    """The engine for `address`: its upstream's model, or the file at `path` (resolved by the
    caller: the CLI may download, the server never does) on the engine its name or format picks."""
    if address.upstream is not None:
        from .upstream import UpstreamModel

        if not upstreams or address.upstream not in upstreams:
            raise UsageError(f"No upstream server is named {address.upstream!r}.", param="model")
        return UpstreamModel(upstreams[address.upstream], address.remote or "")
    if path is None:
        raise UsageError(f"{address.text} names no model file.", param="model")
    return load(path, engine=address.engine, options=options)


def load(path: str | Path, *, engine: str | None = None, options: LoadOptions = LoadOptions()) -> Engine:
    """Load the file at `path` on the named engine (None: the one its format needs)."""
    path = Path(path).expanduser()
    kind = engine_for(path, engine)
    o = options
    if o.rpc:
        if kind != "llama.cpp":
            raise UsageError(
                "RPC workers take GGUF models on llama.cpp; this model runs on OpenVINO.",
                "Leave out --rpc (and R1LOCAL_RPC), or choose a GGUF model.",
            )
        from ..rpc import load_split  # the RPC client only where a load uses it

        return load_split(
            path,
            endpoints=list(o.rpc),
            name=o.name,
            n_ctx=o.n_ctx,
            n_parallel=o.n_parallel,
            n_gpu_layers=o.n_gpu_layers,
            tensor_split=list(o.tensor_split or []) or None,
            n_threads=o.n_threads,
            max_queue=o.max_queue,
            kv_type=o.kv_type,
            speculation=o.speculation,
            progress=o.progress,
            abort=o.abort,
        )
    if kind == "openvino":
        from .openvino import OpenVINOModel  # the optional extra, imported only when asked for

        return OpenVINOModel.load(
            path,
            name=o.name,
            n_ctx=o.n_ctx,
            n_parallel=o.n_parallel,
            n_threads=o.n_threads,
            max_queue=o.max_queue,
            on_compile=o.on_compile,
            abort=o.abort,
        )
    from .model import Model

    return Model.load(
        path,
        name=o.name,
        n_ctx=o.n_ctx,
        n_parallel=o.n_parallel,
        n_gpu_layers=o.n_gpu_layers,
        tensor_split=o.tensor_split,
        n_threads=o.n_threads,
        max_queue=o.max_queue,
        plan=o.plan,
        kv_type=o.kv_type,
        speculation=o.speculation,
        abort=o.abort,
    )


def engine_for(path: Path, engine: str | None) -> str:
    return engine or ("openvino" if is_openvino_folder(path) else "llama.cpp")


def is_openvino_folder(path: Path) -> bool:
    """An OpenVINO IR folder, or its openvino_model.xml (what the store finds for a pulled one)."""
    return path.is_dir() or path.suffix == ".xml"
