"""OpenAI request bodies, with llama-server's extensions. Unknown fields are ignored (refused under
`serve --strict`); documented OpenAI fields this server cannot honour are accepted only at their
neutral values."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from ..engine.params import SamplingParams
from ..request import ChatRequest, Sampling, sampling_params
from ..request import ResponseFormat as JSONFormat
from ..request.grammar import MAX_GRAMMAR_CHARS, json_grammar
from ..request.logit_bias import LogitBias
from ..request.tools import MAX_TOOL_CALLS, MAX_TOOLS, Tool, ToolChoice
from .schema_base import (
    BUDGET,
    MAX_MESSAGES,
    MAX_PARTS,
    MAX_STOPS,
    SEED,
    STOP,
    TOP_K,
    TOP_LOGPROBS,
    Strict,
    neutral_only,
)

MAX_CHOICES = 16  # n: each choice is a sequence in the batch
OPENAI_COMPLETION_TOKENS = 16  # OpenAI's length for a completion that asks none


class TextPart(Strict):
    type: Literal["text"]
    text: str


class ChatMessage(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | Annotated[list[TextPart], Field(max_length=MAX_PARTS)] | None = None
    name: str | None = None
    reasoning_content: str | None = None  # an earlier turn's reasoning (the template drops it) or a prefill's
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = Field(None, max_length=MAX_TOOL_CALLS)  # an earlier turn's calls
    tool_call_id: str | None = None  # a tool result: the call it answers

    def to_engine(self) -> dict:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])
        message: dict[str, Any] = {"role": "system" if self.role == "developer" else self.role, "content": text}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        if self.reasoning_content:
            message["reasoning_content"] = self.reasoning_content
        return message


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

    model: str | None = None  # none: the default model, as llama-server serves its one model
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    stop: STOP | Annotated[list[STOP], Field(max_length=MAX_STOPS)] | None = None
    seed: SEED | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    logit_bias: LogitBias | None = None
    # llama.cpp server extensions that local clients send
    top_k: TOP_K | None = None
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, gt=0.0, le=10.0)
    ignore_eos: bool | None = None  # generate exactly max_tokens (benchmarks)
    n_predict: int | None = Field(None, ge=-1)  # llama.cpp's max_tokens; -1: until the context is full
    cache_prompt: bool | None = None  # prompt reuse is always on
    grammar: str | None = Field(None, max_length=MAX_GRAMMAR_CHARS)  # GBNF for the answer
    json_schema: dict[str, Any] | None = None  # llama.cpp's shortcut for response_format
    prompt_cache_key: str | None = None  # OpenAI's cache hint: reuse here is by prefix, automatic

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens or (self.n_predict if self.n_predict and self.n_predict > 0 else None)

    def requested_logprobs(self) -> int | None:
        """None: no logprobs; k: each token's logprob and its k most likely alternatives."""
        return None

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def sampler(self) -> Sampling:
        return Sampling(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            repeat_penalty=self.repeat_penalty,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            seed=self.seed,
            ignore_eos=self.ignore_eos,
        )


class ChatCompletionRequest(GenerationRequest):
    logprobs: bool | None = None
    top_logprobs: TOP_LOGPROBS | None = None
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    think: bool | None = None  # r1local's switch; reasoning_effort "none" does the same
    reasoning_budget_tokens: BUDGET | None = None  # r1local's: reasoning tokens before answering
    tools: list[Tool] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = Field(None, max_length=16)  # OpenAI's limit
    store: bool | None = None
    service_tier: str | None = None
    # llama.cpp server extensions
    # enable_thinking / thinking switch reasoning
    chat_template_kwargs: dict[str, Any] | None = Field(None, max_length=16)
    continue_final_message: bool | None = None  # a last assistant message is continued unless false
    reasoning_format: Literal["none", "auto", "deepseek", "deepseek-legacy"] | None = None
    truncate: bool | None = None  # false: a chat longer than the context is an error, not trimmed

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or super().requested_max_tokens()

    def requested_logprobs(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None

    def to_request(self) -> ChatRequest:
        """The body as the one chat request (a pure translation: the policy is applied below)."""
        kwargs = self.chat_template_kwargs or {}
        switch = kwargs.get("enable_thinking", kwargs.get("thinking"))
        think = None
        if self.think is False or switch is False or self.reasoning_effort == "none":
            think = False
        elif self.think or switch is True:
            think = True
        effort = None if self.reasoning_effort == "none" else self.reasoning_effort
        return ChatRequest(
            [m.to_engine() for m in self.messages],
            think=think,
            think_budget=self.reasoning_budget_tokens,
            effort=effort,
            tools=self.tools,
            tool_choice=self.tool_choice,
            parallel_tool_calls=self.parallel_tool_calls,
            grammar=self.grammar or None,
            response_format=self.json_format(),
            sampling=self.sampler(),
            logit_bias=self.logit_bias,
            max_tokens=self.requested_max_tokens(),
            stop=self.stops,
            n=self.n,
            logprobs=self.requested_logprobs(),
            trim=self.truncate is not False,
            continue_final=self.continue_final_message is not False,
        )

    def json_format(self) -> JSONFormat | None:
        """response_format, or llama.cpp's json_schema shortcut."""
        if self.response_format is not None and self.response_format.type != "text":
            schema = self.response_format.json_schema.schema_ if self.response_format.json_schema else None
            return JSONFormat(schema, "response_format.json_schema.schema")
        return JSONFormat(self.json_schema, "json_schema") if self.json_schema is not None else None

    @property
    def reasoning_inline(self) -> bool:
        """llama.cpp's reasoning_format "none": the reasoning stays in content, in its tags."""
        return self.reasoning_format == "none"


class CompletionRequest(GenerationRequest):
    prompt: str | list[str]
    max_tokens: int | None = Field(None, ge=1)  # none: serve's --n-predict, else OpenAI's default
    echo: bool = False
    suffix: str | None = None
    logprobs: int | None = Field(None, ge=0, le=5)  # the legacy API's: this many alternatives per token
    best_of: int | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt: str | list[str]) -> str | list[str]:
        if isinstance(prompt, list) and len(prompt) != 1:
            raise ValueError("send one prompt per request")
        return prompt

    @field_validator("best_of")
    @classmethod
    def _no_best_of(cls, v: int | None) -> int | None:
        return neutral_only(v, (None, 1), "best_of")

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def requested_logprobs(self) -> int | None:
        return self.logprobs

    def sampling(self, n_ctx: int | None, choice: int = 0, default_max_tokens: int | None = None) -> SamplingParams:
        """Choice i of n samples with seed + i, so a seeded request stays reproducible. No length
        asked: `default_max_tokens` (serve's --n-predict), else OpenAI's 16."""
        sampler = self.sampler()
        grammar = self.grammar or (
            json_grammar(self.json_schema, "json_schema") if self.json_schema is not None else None
        )
        return sampling_params(
            n_ctx,
            max_tokens=self.requested_max_tokens() or default_max_tokens or OPENAI_COMPLETION_TOKENS,
            stop=self.stops,
            grammar=grammar,
            logprobs=self.requested_logprobs(),
            **{**sampler.fields(), "seed": None if self.seed is None else self.seed + choice},
        )
