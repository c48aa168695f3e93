"""Model names -> GGUF files already on this machine. Over HTTP a name goes only through the
catalog and the local store (allow_paths=False); paths are accepted from the command line only."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import catalog, store
from .. import resolve as names
from ..engine.capabilities import Capabilities, declared
from ..engine.template import ChatTemplate
from ..errors import ModelNotFound, UsageError
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


def default_model(manager: ModelManager) -> str | None:
    """The model a request that names none gets: the loaded one (the first of several), else
    serve's first command-line model."""
    names_ = [entry.name for entry in manager.loaded()] + list(manager.registered())
    return names_[0] if names_ else None


def knows(manager: ModelManager, name: str) -> bool:
    """Whether `name` is a name this server could serve: a command-line, loaded or upstream model,
    or a name the catalog reads (downloaded or not)."""
    if name in manager.aliases or name in manager.registered() or any(e.name == name for e in manager.loaded()):
        return True
    upstream, _, model_id = name.partition("/")
    if upstream in manager.upstreams and model_id:
        return True
    try:
        catalog.parse(name, allow_paths=False)
    except (ModelNotFound, UsageError):
        return False
    return True


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
