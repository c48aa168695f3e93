"""Prometheus metrics in a registry owned by one app (no process-wide globals). Counters come from
finished requests; queue depth and busy slots are read from each loaded model when scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..engine.events import Done
from .manager import ModelManager

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _acceptance(stats: dict) -> float:
    return stats.get("draft_accepted_total", 0) / (stats.get("draft_tokens_total") or 1)


class _EngineCollector(Collector):
    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauges: dict[str, tuple[str, Callable[[dict], float]]] = {
            "r1local_busy_slots": ("Slots generating now", lambda s: s["busy_slots"]),
            "r1local_slots": ("Slots per model (--parallel)", lambda s: s["slots"]),
            "r1local_queue_depth": ("Requests waiting for a slot", lambda s: s["queued"]),
            "r1local_draft_acceptance_ratio": ("Share of speculative draft tokens the model kept", _acceptance),
        }
        families = {name: GaugeMetricFamily(name, doc, labels=["model"]) for name, (doc, _) in gauges.items()}
        loaded = self.manager.loaded()
        for entry in loaded:
            stats = entry.model.stats()
            for name, (_, read) in gauges.items():
                families[name].add_metric([entry.name], read(stats))
        yield from families.values()
        yield GaugeMetricFamily("r1local_models_loaded", "Models in memory", value=len(loaded))


class Metrics:
    def __init__(self, manager: ModelManager) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "r1local_requests",
            "Generation requests by outcome",
            ["model", "api", "finish_reason"],
            registry=self.registry,
        )
        self.errors = Counter(
            "r1local_http_errors", "Responses with an error status (4xx, 5xx)", ["status"], registry=self.registry
        )
        self.prompt_tokens = Counter(
            "r1local_prompt_tokens", "Prompt tokens read (tokens in)", ["model"], registry=self.registry
        )
        self.completion_tokens = Counter(
            "r1local_completion_tokens", "Tokens generated (tokens out)", ["model"], registry=self.registry
        )
        self.cached_tokens = Counter(
            "r1local_prompt_tokens_cached",
            "Prompt tokens whose KV cache was reused, not evaluated again",
            ["model"],
            registry=self.registry,
        )
        self.draft_tokens = Counter(
            "r1local_draft_tokens", "Speculative draft tokens verified", ["model"], registry=self.registry
        )
        self.draft_accepted = Counter(
            "r1local_draft_accepted_tokens",
            "Speculative draft tokens the model kept",
            ["model"],
            registry=self.registry,
        )
        self.tokens_per_s = Gauge(
            "r1local_generation_tokens_per_second",
            "Decode speed of the last finished request",
            ["model"],
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(manager))

    def finished(self, model: str, api: str, done: Done) -> None:
        self.requests.labels(model, api, done.finish_reason).inc()
        self.prompt_tokens.labels(model).inc(done.usage.prompt_tokens)
        self.completion_tokens.labels(model).inc(done.usage.completion_tokens)
        self.cached_tokens.labels(model).inc(done.usage.cached_tokens)
        self.draft_tokens.labels(model).inc(done.timings.draft_n)
        self.draft_accepted.labels(model).inc(done.timings.draft_n_accepted)
        if done.timings.generation_tokens_per_s > 0:
            self.tokens_per_s.labels(model).set(done.timings.generation_tokens_per_s)

    def cancelled(self, model: str, api: str) -> None:
        """A request whose client left before the end: its tokens are not counted."""
        self.requests.labels(model, api, "cancelled").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class CountErrors:
    """ASGI middleware: count every error response, including those middleware sends (401, 413)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                self.metrics.errors.labels(str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send if scope["type"] == "http" else send)
