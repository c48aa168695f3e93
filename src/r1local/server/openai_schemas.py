"""OpenAI request bodies. Unknown fields are refused (a typo is an error, not a silent default);
documented OpenAI fields this server cannot honour are accepted only at their neutral values."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from ..engine.params import SamplingParams
from .schema_base import (
    MAX_MESSAGES, MAX_PARTS, MAX_STOPS, SEED, STOP, TOP_K, NoLogprobs, Strict, neutral_only, sampling_params,
)


class TextPart(Strict):
    type: Literal["text"]
    text: str


class ChatMessage(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | Annotated[list[TextPart], Field(max_length=MAX_PARTS)] | None = None
    name: str | None = None
    reasoning_content: str | None = None  # an earlier turn's reasoning; the template drops it
    refusal: str | None = None

    def to_engine(self) -> dict:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class JSONSchemaFormat(Strict):
    name: str
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs a json_schema object")
        return self


class StreamOptions(Strict):
    include_usage: bool = False
    include_obfuscation: bool | None = None  # no effect: nothing to obfuscate on loopback


class GenerationRequest(Strict):
    """Fields /v1/chat/completions and /v1/completions share."""

    model: str = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    stop: STOP | Annotated[list[STOP], Field(max_length=MAX_STOPS)] | None = None
    seed: SEED | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    logit_bias: dict[str, float] | None = None
    # llama.cpp server extensions that local clients send
    top_k: TOP_K | None = None
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, gt=0.0, le=10.0)
    ignore_eos: bool | None = None  # generate exactly max_tokens (benchmarks)

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        return neutral_only(n, (1,), f"n={n} (one choice per request; send several requests instead)")

    @field_validator("logit_bias")
    @classmethod
    def _no_bias(cls, bias: dict | None) -> dict | None:
        return neutral_only(bias or None, (None,), "logit_bias")

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    def sampling(self, n_ctx: int, grammar: str | None = None) -> SamplingParams:
        return sampling_params(
            n_ctx, max_tokens=self.requested_max_tokens(), grammar=grammar,
            stop=[self.stop] if isinstance(self.stop, str) else list(self.stop or []),
            temperature=self.temperature, top_p=self.top_p, seed=self.seed, top_k=self.top_k,
            presence_penalty=self.presence_penalty, frequency_penalty=self.frequency_penalty,
            min_p=self.min_p, repeat_penalty=self.repeat_penalty, ignore_eos=self.ignore_eos,
        )


class ChatCompletionRequest(GenerationRequest, NoLogprobs):
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    think: bool | None = None  # r1local's switch; reasoning_effort "none" does the same
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto"] | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = Field(None, max_length=16)  # OpenAI's limit
    store: bool | None = None
    service_tier: str | None = None

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, v: list | None) -> list | None:
        return neutral_only(v or None, (None,), "tools (function calling)")

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def thinking(self) -> bool | None:
        """None: the model's default (on for R1). A JSON response_format turns thinking off so the
        grammar shapes the whole answer."""
        if self.think is False or self.reasoning_effort == "none" or self.wants_json:
            return False
        return self.think

    @property
    def wants_json(self) -> bool:
        return self.response_format is not None and self.response_format.type != "text"

    def engine_messages(self) -> list[dict]:
        return [m.to_engine() for m in self.messages]


class CompletionRequest(GenerationRequest):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for completions
    echo: bool = False
    suffix: str | None = None
    logprobs: int | None = None
    best_of: int | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt: str | list[str]) -> str | list[str]:
        if isinstance(prompt, list) and len(prompt) != 1:
            raise ValueError("send one prompt per request")
        return prompt

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, v: bool) -> bool:
        return neutral_only(v, (False,), "echo")

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, v: str | None) -> str | None:
        return neutral_only(v or None, (None,), "suffix")

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v: int | None) -> int | None:
        return neutral_only(v, (None, 0), "logprobs")

    @field_validator("best_of")
    @classmethod
    def _no_best_of(cls, v: int | None) -> int | None:
        return neutral_only(v, (None, 1), "best_of")

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]
