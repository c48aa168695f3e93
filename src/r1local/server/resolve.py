"""Model names -> GGUF files already on this machine. Over HTTP a name goes only through the
catalog and the local store (allow_paths=False); paths are accepted from the command line only."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import resolve as names
from .. import store
from ..engine.capabilities import Capabilities, declared
from ..engine.template import ChatTemplate
from ..gguf_meta import GGUFInfo, read_gguf

if TYPE_CHECKING:
    from .manager import ModelManager


def local_path(name: str, *, allow_paths: bool) -> Path:
    """Never downloads: a model that is not here is a 404 telling the caller to pull it."""
    return names.resolve(name, allow_paths=allow_paths, pull_if_missing=False)


def available_models(manager: ModelManager) -> dict[str, Path]:
    """What a client may ask for: command-line models, loaded ones, then everything downloaded
    and complete (a copy cut short is left out until a pull repairs it)."""
    models = manager.registered()
    for entry in manager.loaded():
        models.setdefault(entry.name, entry.model.path)
    for local in store.installed():
        if local.name not in models and local.complete:
            models[local.name] = local.path
    return models


def engine_of(name: str, path: Path, manager: ModelManager) -> str:
    """The engine that answers for `name`: the loaded model's, else the one it would load on."""
    for entry in manager.loaded():
        if entry.name == name:
            return entry.model.engine
    from ..engine.registry import engine_for, split_engine

    return engine_for(path, split_engine(name)[1])


def capabilities_of(name: str, path: Path, manager: ModelManager, info: GGUFInfo | None = None) -> Capabilities:
    """What the engine answering for `name` declares: the loaded model's own, else what the engine
    it would load on does with its chat template (read from the GGUF header: blocking)."""
    for entry in manager.loaded():
        if entry.name == name or entry.model.path == path:
            return entry.model.capabilities
    info = info or read_gguf(path, require_complete=False)
    return declared(engine_of(name, path, manager), ChatTemplate(info.chat_template), info.context_length)
