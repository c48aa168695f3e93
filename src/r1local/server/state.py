"""What one app instance owns, reached from a request through `request.app.state`."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from .manager import ModelManager
from .metrics import Metrics
from .pull import Pulls
from .response_store import ResponseStore
from .settings import ServerSettings


@dataclass
class ServerState:
    settings: ServerSettings
    manager: ModelManager
    metrics: Metrics
    pulls: Pulls
    responses: ResponseStore = field(default_factory=ResponseStore)  # the Responses API's stored turns


def get_state(request: Request) -> ServerState:
    return request.app.state.r1local
