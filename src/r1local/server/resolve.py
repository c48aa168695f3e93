"""What the server can answer for: the models it lists, and the engine each runs on. A request's
name is resolved by the manager (names.py parses it), never as a path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import presets, store
from ..engine.capabilities import Capabilities, declared
from ..engine.registry import engine_for
from ..engine.template import ChatTemplate
from ..errors import R1Error, UsageError
from ..gguf_meta import GGUFInfo, read_gguf
from ..names import Kind

if TYPE_CHECKING:
    from .manager import ModelManager


def available_models(manager: ModelManager) -> dict[str, Path]:
    """What a client may ask for: command-line models, loaded ones, then everything downloaded
    and complete (a copy cut short is left out until a pull repairs it)."""
    models = manager.registered()
    for entry in manager.loaded():
        models.setdefault(entry.name, entry.model.path)
    for local in store.installed():
        if local.name not in models and local.complete:
            models[local.name] = local.path
    for preset in presets.all_presets():  # listed when their base model is here
        base = models.get(preset.base) or models.get(presets.canonical(preset.base))
        if base is None:
            try:
                base = manager.path_of(preset.base)
            except R1Error:
                continue
        models.setdefault(preset.name, base)
    return models


def engine_of(name: str, path: Path, manager: ModelManager) -> str:
    """The engine that answers for `name`: the loaded model's, else the one it would load on."""
    for entry in manager.loaded():
        if entry.name == name:
            return entry.model.engine
    return engine_for(path, manager.address(name).engine)


def default_model(manager: ModelManager) -> str | None:
    """The model a request that names none gets: the loaded one (the first of several), else
    serve's first command-line model."""
    names_ = [entry.name for entry in manager.loaded()] + list(manager.registered())
    return names_[0] if names_ else None


def knows(manager: ModelManager, name: str) -> bool:
    """Whether `name` is a name this server could serve: a command-line, loaded or upstream model,
    or a name the catalog reads (downloaded or not)."""
    if name in manager.aliases or any(entry.name == name for entry in manager.loaded()) or presets.find(name):
        return True
    try:
        address = manager.address(name)
    except R1Error:
        return False
    return address.kind not in (Kind.SERVED, Kind.PATH) or manager.holds(address)


def lenient_name(manager: ModelManager, name: str | None) -> str:
    """llama-server's reading of `model` on the OpenAI and native routes, so its clients work
    unchanged: none, or a name that means nothing here (gpt-3.5-turbo), is the default model; a
    name this server knows keeps its own answer (a catalog model not downloaded stays a 404)."""
    default = default_model(manager)
    if not name:
        if default is None:
            raise UsageError('No model is loaded; name one with "model".', param="model")
        return default
    return name if default is None or knows(manager, name) else default


def capabilities_of(name: str, path: Path, manager: ModelManager, info: GGUFInfo | None = None) -> Capabilities:
    """What the engine answering for `name` declares: the loaded model's own, else what the engine
    it would load on does with its chat template (read from the GGUF header: blocking)."""
    for entry in manager.loaded():
        if entry.name == name or entry.model.path == path:
            return entry.model.capabilities
    info = info or read_gguf(path, require_complete=False)
    return declared(engine_of(name, path, manager), ChatTemplate(info.chat_template), info.context_length)


def declared_for(manager: ModelManager, name: str) -> tuple[Capabilities, str] | None:
    """What the engine that would answer for `name` declares, and that engine, without loading it
    (blocking: reads a GGUF header); None where only loading tells (an OpenVINO IR folder)."""
    if manager.address(name).kind is Kind.UPSTREAM:
        from ..engine.upstream import UPSTREAM_CAPABILITIES

        return UPSTREAM_CAPABILITIES, "upstream"
    path = manager.path_of(name)  # an unknown name: the 404 the load would give
    if path.is_dir() or path.suffix == ".xml":
        return None
    return capabilities_of(name, path, manager), engine_of(name, path, manager)
