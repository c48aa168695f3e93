"""Ollama request bodies, with Ollama's documented fields; anything else is ignored, as Ollama
does (refused under `serve --strict`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..engine.params import SamplingParams
from ..request import ChatRequest, ResponseFormat, Sampling, sampling_params
from ..request.grammar import json_grammar
from ..request.tools import MAX_TOOL_CALLS, MAX_TOOLS, Tool, ToolChoice
from .schema_base import (
    BUDGET,
    INT64,
    MAX_MESSAGES,
    MAX_STOPS,
    SEED,
    STOP,
    TOP_K,
    TOP_LOGPROBS,
    Strict,
    neutral_only,
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
    think_budget: BUDGET | None = None  # r1local's: reasoning tokens before answering
    num_ctx: int | None = Field(None, ge=1, le=2**31 - 1)  # caps the request's context, up to the loaded one
    # accepted and ignored: load-time settings are fixed by `r1local serve` flags, and the
    # samplers below are not in the engine's chain
    num_keep: INT64 | None = None  # trimming keeps the system prompt and the last user turn instead
    typical_p: float | None = None
    tfs_z: float | None = None
    mirostat: INT64 | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    penalize_newline: bool | None = None
    numa: bool | None = None
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
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    thinking: str | None = None  # an earlier turn's reasoning (the template drops it) or a prefill's
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = Field(None, max_length=MAX_TOOL_CALLS)  # an earlier turn's calls
    tool_name: str | None = None  # a tool result: the function that produced it

    @field_validator("images")
    @classmethod
    def _no_images(cls, v: list | None) -> list | None:
        return neutral_only(v or None, (None,), "images (these models read text only)")

    def to_engine(self) -> dict:
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        if self.thinking:
            message["reasoning_content"] = self.thinking
        return message


class GenerateBase(Strict):
    model: str = Field(min_length=1)
    logprobs: bool | None = None  # each generated token's log-probability (thinking included)
    top_logprobs: TOP_LOGPROBS | None = None  # and this many of the likeliest alternatives
    stream: bool = True
    format: Literal["", "json"] | dict[str, Any] | None = None
    options: Options | None = None
    keep_alive: str | float | None = None
    think: bool | Literal["low", "medium", "high"] | None = None
    truncate: bool | None = None  # false: a conversation longer than the context is an error, not trimmed

    def to_request(self, messages: list[dict], **tools: Any) -> ChatRequest:
        """The body as the one chat request (a pure translation: the policy is applied below)."""
        o = self.options or Options()
        return ChatRequest(
            messages,
            think=None if self.think is None else self.think is not False,
            think_budget=o.think_budget,
            effort=self.think if isinstance(self.think, str) else None,
            response_format=ResponseFormat(self.format if isinstance(self.format, dict) else None, "format")
            if self.format
            else None,
            sampling=self.sampler(),
            max_tokens=o.num_predict,
            stop=list(o.stop or []),
            logprobs=(self.top_logprobs or 0) if self.logprobs else None,
            context_limit=o.num_ctx,
            trim=self.truncate is not False,
            **tools,
        )

    def sampler(self) -> Sampling:
        o = self.options or Options()
        return Sampling(
            temperature=o.temperature,
            top_p=o.top_p,
            top_k=o.top_k,
            min_p=o.min_p,
            repeat_penalty=o.repeat_penalty,
            repeat_last_n=o.repeat_last_n,
            presence_penalty=o.presence_penalty,
            frequency_penalty=o.frequency_penalty,
            seed=o.seed,
        )

    def sampling(self, n_ctx: int | None) -> SamplingParams:
        """A raw /api/generate's settings (no template, so no chat policy)."""
        chat = self.to_request([])
        grammar = json_grammar(chat.response_format.schema, "format") if chat.response_format else None
        return sampling_params(
            n_ctx,
            max_tokens=chat.max_tokens,
            stop=chat.stop,
            grammar=grammar,
            context_limit=chat.context_limit,
            logprobs=chat.logprobs,
            **chat.sampling.fields(),
        )


class OllamaChatRequest(GenerateBase):
    messages: list[Message] = Field(default_factory=list, max_length=MAX_MESSAGES)
    tools: list[Tool] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None  # r1local's, as OpenAI's: Ollama lets the model decide

    def chat(self) -> ChatRequest:
        return self.to_request([m.to_engine() for m in self.messages], tools=self.tools, tool_choice=self.tool_choice)


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

    def chat(self) -> ChatRequest:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return self.to_request([*system, {"role": "user", "content": self.prompt or ""}])


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
