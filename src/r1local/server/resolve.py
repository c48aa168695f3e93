"""What the server can answer for: the models it lists, and the engine each runs on. A request's
name is resolved by the manager (names.py parses it), never as a path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import store
from ..engine.registry import engine_for

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
    return models


def engine_of(name: str, path: Path, manager: ModelManager) -> str:
    """The engine that answers for `name`: the loaded model's, else the one it would load on."""
    for entry in manager.loaded():
        if entry.name == name:
            return entry.model.engine
    return engine_for(path, manager.address(name).engine)
