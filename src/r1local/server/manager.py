"""The models the server holds: loaded on demand by name, shared by every request through the
engine's continuous batch, unloaded after their keep-alive, at most `max_loaded` at once with the
least recently used idle one evicted first, and never loaded past what memory holds."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from .. import fit, presets, resolve
from ..engine import registry
from ..engine.base import Engine
from ..engine.upstream import Upstream
from ..errors import Overloaded, R1Error
from ..hardware import Hardware
from ..names import Kind, ModelAddress
from . import memory
from .errors import client_message
from .settings import ServerSettings

log = logging.getLogger("r1local.server")

KEEP = object()  # release() sentinel: keep the model's current keep-alive
# a loaded model: its file (or folder), the engine running it, and "" (serve's settings) or the name of
# the preset whose own load settings (a draft, a KV type) it was loaded with
Key = tuple[Path, str, str]
MODEL_THREADS = 2  # each model's threads for rendering, tokenising and building samplers


def model_bytes(path: Path) -> int:
    """A GGUF's size, or an OpenVINO folder's."""
    folder = path.parent if path.suffix == ".xml" else path  # an OpenVINO folder, or its model file
    if folder.is_dir():
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return path.stat().st_size


@dataclass
class Entry:
    name: str
    model: Engine
    size_bytes: int  # memory the engine allocated for it, RAM and VRAM together
    vram_bytes: int  # the part on GPUs
    keep_alive_s: float | None  # None: never unload
    gpu_layers: int  # offloaded layers; 0: CPU only
    last_used: float = field(default_factory=time.time)
    active: int = 0  # requests holding a lease
    # Its own threads: a model whose template or grammar is slow (a hostile file's) queues its
    # own requests there, and never takes the threads other models' requests need.
    threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(MODEL_THREADS, thread_name_prefix="r1local-model")
    )

    @property
    def expires_at(self) -> float | None:
        if self.keep_alive_s is None:
            return None
        return self.last_used + self.keep_alive_s


class Lease:
    """One request's hold on a loaded model; release it exactly once, when the response ends."""

    def __init__(self, manager: ModelManager, entry: Entry) -> None:
        self._manager = manager
        self.entry = entry
        self.model: Engine = entry.model
        self._released = False

    def work(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future:
        """`function(*args, **kwargs)` in the model's own threads (it may take time: never on the event loop)."""
        return asyncio.get_running_loop().run_in_executor(self.entry.threads, partial(function, *args, **kwargs))

    def release(self, keep_alive_s: float | None | object = KEEP) -> None:
        if not self._released:
            self._released = True
            self._manager._release(self.entry, keep_alive_s)


class ModelManager:
    def __init__(self, settings: ServerSettings, *, hardware: Callable[[], Hardware] = memory.hardware_now) -> None:
        self.settings = settings
        self._hardware = hardware
        self._entries: OrderedDict[Key, Entry] = OrderedDict()  # least recently used first
        self._registered: dict[str, Path] = {}  # command-line models, by name or file stem (served_name)
        self._resolved: dict[str, Path] = {}  # names requests used, resolved once through the store
        self._load_lock = asyncio.Lock()  # one load at a time: loads compete for the same memory
        self._waiters: Counter[Key] = Counter()  # requests waiting for each model's load
        self._wake = asyncio.Event()
        self.upstreams = {name: Upstream(name, url) for name, url in settings.upstreams}
        self.aliases = dict(settings.aliases)  # serve --alias: names clients send (claude-sonnet-4) for a model
        self._upstream_entries: dict[str, Entry] = {}  # served elsewhere: never loaded, never evicted
        self._reaper: asyncio.Task | None = None
        self._stopping = False  # read by loads in progress: a stopping server stops them
        self.ready = False
        self.failed: dict[str, str] = {}  # command-line models that could not load, and why

    # -- lifecycle --
    async def start(self) -> None:
        """Load the command-line models (paths allowed there), then reap idle models until stopped."""
        self._reaper = asyncio.create_task(self._reap_forever())
        try:
            for name in self.settings.models:
                alias = name
                try:
                    address = ModelAddress.parse(name, allow_paths=True)
                    alias = address.served_name
                    path = resolve.resolve(address)
                    self._registered[alias] = path
                    (await self.acquire(alias)).release()
                except R1Error as error:  # the server stays up for the models that can load
                    log.error("could not load %s: %s", name, error)
                    self.failed[alias] = client_message(error)
                except Exception as error:
                    log.exception("could not load %s", name)
                    self.failed[alias] = f"Internal error: {type(error).__name__}."
        finally:
            self.ready = True

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._reaper:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
        for key in list(self._entries):
            await self._unload(key)
        for upstream in self.upstreams.values():
            upstream.close()

    @property
    def loading(self) -> bool:
        return self._load_lock.locked()

    # -- requests --
    def address(self, name: str) -> ModelAddress:
        """A request's model name (or the model its --alias or preset stands for), parsed as a name
        only: over HTTP no name opens a path."""
        return ModelAddress.parse(presets.base_of(self.aliases.get(name, name)), upstreams=self.upstreams)

    async def acquire(self, name: str) -> Lease:
        """Resolve `name` through the models this server holds, the catalog and the local store
        (never an arbitrary path), load it if needed, and hold it until the lease is released.
        NAME/MODEL names a model of the upstream server NAME."""
        address = self.address(name)
        own = self._own_copy(name)
        name = address.text  # an alias's model
        if address.kind is Kind.UPSTREAM:
            entry = self._upstream_entries.get(name)
            if entry is None:
                model = registry.open(address, None, registry.LoadOptions(name=name), self.upstreams)
                entry = Entry(name, model, 0, 0, None, 0)
                self._upstream_entries[name] = entry
            entry.active += 1
            return Lease(self, entry)
        held = self._held(address)
        key = self._key(address, own)
        if own is not None:  # a preset's own copy goes by the preset's name
            name = own.name
        elif held is not None:  # a model held under another name (a path, a stem) keeps its own
            name = held[0]
        entry = self._entries.get(key)
        if entry is not None and getattr(entry.model, "lost", None):  # its RPC worker went away: load it again
            await self._unload(key)
            entry = None
        if entry is None:
            self._waiters[key] += 1
            try:
                async with self._load_lock:
                    entry = self._entries.get(key) or await self._load(name, key, own)
            finally:  # a request that gave up (its client left) no longer waits
                self._waiters[key] -= 1
        self._entries.move_to_end(key)
        entry.active += 1
        return Lease(self, entry)

    def path_of(self, name: str) -> Path:
        """The file a model name means: the models this server holds (by name, file stem or the
        file's path), then the catalog and the store. Never downloads."""
        return self._path(self.address(name))

    def key_of(self, name: str) -> Key:
        """The loaded model a name means: its file and the engine that runs it."""
        return self._key(self.address(name), self._own_copy(name))

    def _key(self, address: ModelAddress, own: presets.Preset | None = None) -> Key:
        path = self._path(address)
        return path, registry.engine_for(path, address.engine), own.name if own else ""

    def _own_copy(self, name: str) -> presets.Preset | None:
        """The preset `name` means when it loads its model with settings of its own."""
        preset = presets.find(self.aliases.get(name, name))
        return preset if preset is not None and preset.loads_its_own() else None

    def _settings_for(self, own: presets.Preset | None, path: Path) -> ServerSettings:
        """serve's settings, with a preset's KV type and drafts over them (its draft resolved as a
        request's model name is: a model here, never a path the server was not started with)."""
        if own is None:
            return self.settings
        changes: dict[str, Any] = {"kv_type": own.kv_type} if own.kv_type else {}
        if (drafts := own.speculation()) is not None:
            if drafts.draft:
                drafts = replace(drafts, draft=str(self.path_of(self._draft_name(drafts.draft, path))))
            changes["speculation"] = drafts
        return replace(self.settings, **changes)

    @staticmethod
    def _draft_name(draft: str, target: Path) -> str:
        """auto: the catalog's draft for the distill `target` is."""
        if draft != "auto":
            return draft
        from .. import catalog
        from ..gguf_meta import read_gguf

        info = read_gguf(target)
        return catalog.load().draft_for(info.architecture or "", info.parameter_count, target.name)

    def _path(self, address: ModelAddress) -> Path:
        if (held := self._held(address)) is not None:
            return held[1]
        path = self._resolved.get(address.name) or resolve.resolve(address)
        self._resolved[address.name] = path
        return path

    def holds(self, address: ModelAddress) -> bool:
        """Whether the address means a command-line or loaded model (by name, file stem or path)."""
        return self._held(address) is not None

    def _held(self, address: ModelAddress) -> tuple[str, Path] | None:
        """(name, file) of a command-line or loaded model the address means. A path matches only
        these files, compared as text: a request never makes the server look at a path."""
        if address.kind is Kind.PATH:
            files = [*self.registered().items(), *((e.name, e.model.path) for e in self.loaded())]
            return next(((held, path) for held, path in files if address.names_file(path)), None)
        for name in (address.served_name, address.name):
            if name in self._registered:
                return name, self._registered[name]
        return None

    def _release(self, entry: Entry, keep_alive_s: float | None | object) -> None:
        entry.active -= 1
        entry.last_used = time.time()
        if keep_alive_s is not KEEP:
            entry.keep_alive_s = keep_alive_s  # type: ignore[assignment]
        self._wake.set()  # a keep_alive of 0 unloads now

    def unload(self, name: str) -> None:
        """Ollama's keep_alive 0 on an empty request: unload now, or as soon as the model is idle."""
        entry = self._entries.get(self.key_of(name))
        if entry is not None:
            entry.keep_alive_s = 0
            self._wake.set()

    def loaded(self) -> list[Entry]:
        return list(self._entries.values())

    def registered(self) -> dict[str, Path]:
        return dict(self._registered)

    async def upstream_models(self) -> list[str]:
        """NAME/MODEL for every model the upstreams that answer now offer."""
        lists = await asyncio.gather(*(asyncio.to_thread(u.models) for u in self.upstreams.values()))
        return [
            f"{u.name}/{model}" for u, models in zip(self.upstreams.values(), lists, strict=True) for model in models
        ]

    # -- loading and eviction --
    async def _load(self, name: str, key: Key, own: presets.Preset | None = None) -> Entry:
        path, engine, _ = key
        s = await asyncio.to_thread(self._settings_for, own, path)
        checked = await self._make_room(path, s)
        n_ctx = s.ctx  # None: the engine asks the fit itself
        if checked is not None:  # the live memory check's plan: it may have had to shrink the context
            n_ctx = checked.n_ctx if s.ctx is None or checked.n_ctx < s.ctx else s.ctx
        log.info("loading %s from %s", name, path)
        options = registry.LoadOptions(
            name=name,
            n_ctx=n_ctx,
            n_parallel=s.parallel,
            plan=checked,
            n_gpu_layers=s.n_gpu_layers,
            tensor_split=list(s.tensor_split) or None,
            n_threads=s.n_threads,
            max_queue=s.max_queue,
            kv_type=s.kv_type,
            speculation=s.speculation,
            rpc=s.rpc if engine == "llama.cpp" else (),  # the workers take GGUFs; OpenVINO models load here
            abort=lambda: self._stopping or not self._waiters[key],
        )  # nobody waits for it any more
        model = await asyncio.to_thread(registry.load, path, engine=engine, options=options)
        model.default_max_tokens, model.default_seed, model.default_temperature = s.n_predict, s.seed, s.temperature
        if model.load_note:
            log.warning("%s", model.load_note)
        ram, vram = model.memory_bytes() or (model_bytes(path), 0)
        entry = Entry(name, model, ram + vram, vram, s.keep_alive_s, model.n_gpu_layers)
        self._entries[key] = entry
        in_ram, in_vram = self.memory_in_use()
        log.info(
            "loaded %s: %.2f GiB in RAM, %.2f GiB on GPUs; all loaded models: %.2f GiB RAM, %.2f GiB GPU",
            name,
            ram / 2**30,
            vram / 2**30,
            in_ram / 2**30,
            in_vram / 2**30,
        )
        return entry

    def memory_in_use(self) -> tuple[int, int]:
        """(RAM, VRAM) bytes llama.cpp holds for the loaded models."""
        entries = self._entries.values()
        return sum(e.size_bytes - e.vram_bytes for e in entries), sum(e.vram_bytes for e in entries)

    async def _make_room(self, path: Path, settings: ServerSettings) -> fit.FitPlan | None:
        """Evict idle models, least recently used first, until one more is allowed and (when
        checking memory) the fit says it fits; its plan then sets the context and GPU layers."""
        while len(self._entries) >= self.settings.max_loaded:
            if not await self._evict_idle():
                raise Overloaded(
                    f"{len(self._entries)} models are loaded (--max-loaded) and every one is busy.",
                    "Retry when a request finishes, or start the server with a larger --max-loaded.",
                )
        # the fit reads GGUFs; a split over RPC workers checks every machine's memory itself
        if not settings.check_memory or path.is_dir() or settings.rpc:
            return None
        while not (load_plan := await asyncio.to_thread(memory.plan, path, settings, self._hardware())).fits:
            if not await self._evict_idle():
                raise memory.refusal(path, load_plan)
        return load_plan

    async def _evict_idle(self) -> bool:
        """Unload the least recently used model no request holds; False when every one is busy."""
        idle = [p for p, e in self._entries.items() if e.active == 0]
        if idle:
            await self._unload(idle[0])
        return bool(idle)

    async def _unload(self, key: Key) -> None:
        entry = self._entries.pop(key)
        log.info("unloading %s", entry.name)
        entry.threads.shutdown(wait=False)
        await asyncio.to_thread(entry.model.close)

    async def _reap_forever(self) -> None:
        while not self._stopping:
            now = time.time()
            for key, entry in list(self._entries.items()):
                expires = entry.expires_at
                if entry.active == 0 and expires is not None and expires <= now and key in self._entries:
                    await self._unload(key)
            self._wake.clear()
            # not wait_for: on Python < 3.12 it can swallow the cancellation stop() sends
            waiting = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waiting}, timeout=self._next_expiry(now))
            finally:
                waiting.cancel()

    def _next_expiry(self, now: float) -> float:
        times = [e.expires_at for e in self._entries.values() if e.active == 0 and e.expires_at is not None]
        return max(0.05, min(times, default=now + 60) - now)
