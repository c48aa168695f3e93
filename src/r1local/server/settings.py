"""Everything `r1local serve` was told, in one immutable object handed to the app factory."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import config
from ..engine.speculative import Speculation
from ..request import ChatRequest


@dataclass(frozen=True)
class ServerSettings:
    models: tuple[str, ...] = ()  # loaded at start; paths allowed here (the operator typed them)
    host: str = config.DEFAULT_HOST
    port: int = config.DEFAULT_PORT
    parallel: int = 4  # slots per model, all in one continuous batch
    max_queue: int | None = None  # requests waiting beyond the slots; None: 4 per slot
    ctx: int | None = None  # context per slot; None: the engine's default for the model
    n_gpu_layers: int | None = None  # None: as many as the build and the memory allow
    tensor_split: tuple[float, ...] = ()  # each device's share of the offloaded layers; (): by free memory
    n_threads: int | None = None  # None: physical cores
    kv_type: str | None = None  # the KV cache's type; None: the fit's choice (f16, or q8_0 where only it fits)
    speculation: Speculation | None = None  # draft tokens for every GGUF model (--spec)
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()  # Host names answered beyond IP addresses and localhost; "*": any
    keep_alive_s: float | None = 300.0  # idle time before unloading; None keeps models forever
    max_loaded: int = 1
    max_body_bytes: int = 4 * 1024 * 1024
    retry_after_s: int = 2  # sent with 503 when every slot and queue place is taken
    check_memory: bool = True  # refuse loads the fit says the machine cannot hold
    trim: bool = True  # drop a long chat's oldest turns to fit the context (else: 400)
    think_budget: int | None = None  # reasoning tokens for requests that set no budget; None: unlimited
    strict: bool = False  # refuse request fields the server does not know (default: ignore them)
    upstreams: tuple[tuple[str, str], ...] = ()  # (NAME, URL) of OpenAI-compatible servers fronted
    rpc: tuple[str, ...] = ()  # RPC workers every GGUF model is spread over (rpc/)
    web_ui: bool = True  # the chat page at /
    aliases: tuple[tuple[str, str], ...] = ()  # (NAME, MODEL): a name clients send, served by MODEL
    pooling: str | None = None  # embeddings' pooling for every model (none/mean/cls/last); None: the model's own
    n_predict: int | None = None  # tokens generated when a request sets no limit; None: up to the context
    seed: int | None = None  # the sampling seed when a request sets none; None: a fresh one each time
    temperature: float | None = None  # the temperature when a request sets none; None: the engine's default

    def apply(self, chat: ChatRequest) -> ChatRequest:
        """A request with this server's defaults: its think budget, and no trimming under --no-trim."""
        return replace(chat, default_think_budget=self.think_budget, trim=chat.trim and self.trim)
