"""The local HTTP API: OpenAI- and Ollama-compatible routes over the engine's continuous batch."""

from .app import create_app
from .settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
