"""Where a command's requests go: a running `r1local serve` that holds or can load the model (as
Ollama's CLI does), or the model loaded in this process. A path and its served name are the same
model: the server is asked by the file's absolute path and matches it to the file it holds."""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import catalog, config, presets
from ..client import RemoteStream, ResidentServer
from ..engine import registry
from ..engine.base import Engine
from ..engine.speculative import Speculation
from ..names import ModelAddress
from ..request import ChatRequest, submit
from .app import err
from .models import resolve_model
from .options import parse_split
from .resident import announce, find_server

if TYPE_CHECKING:
    from ..engine.stream import Stream


@dataclass
class Backend:
    """Where a command's requests go: a resident server that has the model, or the model loaded here."""

    where: str  # "http://127.0.0.1:11435" or "this process"
    engine: str  # "llama.cpp", "openvino"; "r1local serve" when a server answers
    device: str  # where the model runs, as the engine names it; the server's URL when a server answers
    chat: Callable[[ChatRequest], Stream | RemoteStream]  # a request -> a stream of its events


@contextmanager
def resident(address: ModelAddress, *, local: bool = False, rpc: str | None = None) -> Iterator[ResidentServer | None]:
    """The running server, when it holds `address` or can load it without a download; None when
    there is none, it cannot, or this process must load the model (--local, RPC workers)."""
    found = None if local or rpc or config.rpc_workers() else find_server()
    server = found.server if found else None
    if server is not None and not server.has(address.for_server):
        server.close()
        server = None
    if found is not None and server is not None:
        announce(found)
    try:
        yield server
    finally:
        if server is not None:
            server.close()


def note_ignored(server: ResidentServer, model: str, **load_options: object) -> None:
    """One line when load options were given for a model the server runs with its own."""
    ignored = ["--" + name.replace("_", "-") for name, value in load_options.items() if value is not None]
    if ignored:
        err.print(
            f"note: the server at {server.url} runs {model} with its own settings "
            f"({', '.join(ignored)} not applied); --local loads it in this process.",
            style="dim",
            markup=False,
        )


@contextmanager
def open_backend(
    model: str,
    ctx: int | None,
    threads: int | None,
    gpu_layers: int | None,
    yes: bool,
    local: bool,
    rpc: str | None = None,
    tensor_split: str | None = None,
    kv_type: str | None = None,
    spec: Speculation | None = None,
) -> Iterator[Backend]:
    """A running `r1local serve` answers when it can load the model (already loaded: at once), by
    any of its names or its file's path; --local or RPC workers load the model in this process. A
    preset runs its base model with the preset's settings; its draft and KV type apply where the
    command gives none."""
    preset = presets.find(model)
    address = ModelAddress.parse(preset.base if preset else model, allow_paths=True)
    # a server is asked for a preset by its name: it applies the preset (and loads its own copy of
    # the model where the preset has load settings)
    asked = ModelAddress.parse(preset.name) if preset else address
    with resident(asked, local=local, rpc=rpc) as server:
        if server is not None:
            note_ignored(
                server,
                model,
                ctx=ctx,
                threads=threads,
                gpu_layers=gpu_layers,
                tensor_split=tensor_split,
                kv_type=kv_type,
                spec=spec,
            )
            yield Backend(
                server.url,
                "r1local serve",
                server.url,
                lambda chat: server.chat(asked.for_server, chat),
            )
            return
    if preset is not None:
        kv_type, spec = kv_type or preset.kv_type, spec or preset.speculation()
    with open_model(address, ctx, threads, gpu_layers, yes, rpc, tensor_split, kv_type, spec) as loaded:
        yield Backend(
            "this process",
            loaded.engine,
            loaded.device,
            lambda chat: submit(preset.applied(chat) if preset else chat, loaded),
        )


@contextmanager
def spinner(text: str) -> Iterator[None]:
    """A spinner on stderr while something slow runs, on a terminal only (never in a pipe or a log)."""
    if err.is_terminal:
        with err.status(text, spinner="dots"):
            yield
    else:
        yield


def open_model(
    address: ModelAddress,
    ctx: int | None,
    threads: int | None,
    gpu_layers: int | None,
    yes: bool = False,
    rpc: str | None = None,
    tensor_split: str | None = None,
    kv_type: str | None = None,
    spec: Speculation | None = None,
) -> Engine:
    """Load the model in this process (downloading it first if need be, after asking)."""
    from ..rpc import parse_endpoints

    split = parse_split(tensor_split)
    path = resolve_model(address, yes=yes)
    if spec and spec.draft:
        spec = dataclasses.replace(spec, draft=str(draft_file(spec.draft, path, yes)))
    endpoints = parse_endpoints(rpc or config.rpc_workers())
    with spinner(f"Loading {address.text}..."), ctrl_c_stops_loading() as pressed:
        loaded = registry.open(
            address,
            path,
            registry.LoadOptions(
                n_ctx=ctx,
                n_threads=threads,
                n_gpu_layers=gpu_layers,
                tensor_split=split,
                kv_type=kv_type,
                speculation=spec,
                rpc=endpoints,
                abort=pressed,
                on_compile=_say_compiling,
                progress=lambda line: err.print(line, style="dim", markup=False),
            ),
        )
    if loaded.load_note:
        err.print(f"note: {loaded.load_note}", markup=False, style="yellow")
    return loaded


def draft_file(draft: str, target: Path, yes: bool = False) -> Path:
    """The draft model's file: --draft auto is the catalog's draft for the distill `target` is."""
    if draft == "auto":
        from ..gguf_meta import read_gguf

        info = read_gguf(target)
        draft = catalog.load().draft_for(info.architecture or "", info.parameter_count, target.name)
    return resolve_model(ModelAddress.parse(draft, allow_paths=True), yes=yes)


def _say_compiling(plan) -> None:
    err.print(
        f"Compiling the model for the {plan.device} (first load only; later loads read {plan.cache_dir})...",
        style="dim",
        markup=False,
    )


@contextmanager
def ctrl_c_stops_loading() -> Iterator[Callable[[], bool]]:
    """While the weights load, Ctrl-C only raises a flag that llama.cpp reads between tensors (a
    KeyboardInterrupt raised inside llama.cpp's log callback would be swallowed by ctypes); the
    load stops, then the interrupt goes on as usual."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed.is_set
        return
    previous = signal.signal(signal.SIGINT, lambda *_: pressed.set())
    try:
        yield pressed.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
        if pressed.is_set():
            raise KeyboardInterrupt
