"""Ollama request bodies, with Ollama's documented fields; anything else is refused."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..engine.params import SamplingParams
from .schema_base import (
    INT64, MAX_MESSAGES, MAX_STOPS, SEED, STOP, TOP_K, NoLogprobs, Strict, neutral_only, sampling_params,
)


class Options(Strict):
    # sampling: honoured per request
    seed: SEED | None = None
    num_predict: INT64 | None = None  # -1: until the context is full; clamped to it
    top_k: TOP_K | None = None
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    repeat_penalty: float | None = Field(None, gt=0.0, le=10.0)
    repeat_last_n: int | None = Field(None, ge=-1, le=2**31 - 1)  # clamped to the context
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    stop: list[STOP] | None = Field(None, max_length=MAX_STOPS)
    # accepted and ignored: load-time settings are fixed by `r1local serve` flags, and the
    # samplers below are not in the engine's chain
    num_keep: INT64 | None = None
    typical_p: float | None = None
    tfs_z: float | None = None
    mirostat: INT64 | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    penalize_newline: bool | None = None
    numa: bool | None = None
    num_ctx: INT64 | None = None
    num_batch: INT64 | None = None
    num_gpu: INT64 | None = None
    main_gpu: INT64 | None = None
    low_vram: bool | None = None
    f16_kv: bool | None = None
    logits_all: bool | None = None
    vocab_only: bool | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    embedding_only: bool | None = None
    num_thread: INT64 | None = None


class Message(Strict):
    role: Literal["system", "user", "assistant"]
    content: str = ""
    thinking: str | None = None  # an earlier turn's reasoning; the template drops it
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None

    @field_validator("images")
    @classmethod
    def _no_images(cls, v: list | None) -> list | None:
        return neutral_only(v or None, (None,), "images (these models read text only)")

    @field_validator("tool_calls")
    @classmethod
    def _no_tool_calls(cls, v: list | None) -> list | None:
        return neutral_only(v or None, (None,), "tool_calls")


class GenerateBase(NoLogprobs):
    model: str = Field(min_length=1)
    stream: bool = True
    format: Literal["", "json"] | dict[str, Any] | None = None
    options: Options | None = None
    keep_alive: str | float | None = None
    think: bool | Literal["low", "medium", "high"] | None = None

    @property
    def wants_json(self) -> bool:
        return bool(self.format)

    def thinking(self) -> bool | None:
        """None: the model's default (on for R1); a JSON format turns thinking off."""
        if self.think is False or self.wants_json:
            return False
        return None if self.think is None else True

    def sampling(self, n_ctx: int, grammar: str | None) -> SamplingParams:
        o = self.options or Options()
        return sampling_params(
            n_ctx, max_tokens=o.num_predict if o.num_predict and o.num_predict > 0 else None,
            stop=list(o.stop or []), grammar=grammar,
            seed=o.seed, top_k=o.top_k, top_p=o.top_p, min_p=o.min_p, temperature=o.temperature,
            repeat_penalty=o.repeat_penalty, presence_penalty=o.presence_penalty,
            repeat_last_n=n_ctx if o.repeat_last_n == -1 else o.repeat_last_n,
            frequency_penalty=o.frequency_penalty,
        )


class ChatRequest(GenerateBase):
    messages: list[Message] = Field(default_factory=list, max_length=MAX_MESSAGES)
    tools: list[dict[str, Any]] | None = None

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, v: list | None) -> list | None:
        return neutral_only(v or None, (None,), "tools (function calling)")

    def engine_messages(self) -> list[dict]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


class GenerateRequest(GenerateBase):
    prompt: str | None = None
    system: str | None = None
    raw: bool = False
    suffix: str | None = None
    template: str | None = None
    context: list[int] | None = None
    images: list[str] | None = None

    @field_validator("suffix", "template")
    @classmethod
    def _unsupported(cls, v: str | None) -> str | None:
        return neutral_only(v or None, (None,), "suffix and template")

    @field_validator("context")
    @classmethod
    def _no_context(cls, v: list | None) -> list | None:
        return neutral_only(v or None, (None,), "context (send the conversation to /api/chat instead)")

    @field_validator("images")
    @classmethod
    def _no_images(cls, v: list | None) -> list | None:
        return neutral_only(v or None, (None,), "images (these models read text only)")

    def engine_messages(self) -> list[dict]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": self.prompt or ""}]


class NamedRequest(Strict):
    """/api/show and /api/pull: older clients send `name` instead of `model`."""

    model: str | None = None
    name: str | None = None
    verbose: bool | None = None
    insecure: bool | None = None
    stream: bool = True

    @model_validator(mode="after")
    def _has_name(self) -> NamedRequest:
        if not (self.model or self.name):
            raise ValueError("model is required")
        return self

    @property
    def model_name(self) -> str:
        return self.model or self.name or ""
