"""The one event type every consumer reads: reasoning text, answer text, tool calls (as they form,
then whole), then done."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ToolCall:
    """One function call the model made; `arguments` is JSON text, as OpenAI sends it."""

    index: int
    id: str
    name: str
    arguments: str

    def as_dict(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class ToolCallDelta:
    """A call as it forms, before its ToolCall: the first delta of a call names it (empty
    `arguments`), the next ones carry the pieces of its JSON arguments as the model writes them."""

    index: int
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token's log-probability, and the most likely alternatives (text, logprob, bytes)."""

    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float, list[int]]]
    id: int = -1  # the token's id, and its alternatives' (llama-server's clients read them)
    top_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens whose KV cache was reused
    reasoning_tokens: int = 0  # completion tokens spent inside <think>...</think>

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Timings:
    queued_s: float  # waiting for a slot
    ttft_s: float  # submit -> first generated token
    prompt_tokens_per_s: float
    generation_tokens_per_s: float
    prompt_s: float = 0.0  # admitted -> first token
    generation_s: float = 0.0  # first token -> done
    draft_n: int = 0  # speculative draft tokens verified (llama-server's name)
    draft_n_accepted: int = 0  # of which the target model kept


@dataclass
class Progress:
    """How far a request has come, as the scheduler last wrote it: routes that report telemetry
    while generating (llama-server's timings_per_token, return_progress) read it."""

    prompt_tokens: int = 0
    cached_tokens: int = 0  # of the prompt, reused from the KV cache
    prompt_s: float = 0.0  # admitted -> first token
    generated: int = 0
    first_token: float = 0.0  # time.perf_counter() at the first token; 0.0: not yet

    def timings(self, now: float) -> Timings:
        """The prompt's and the generation's timings so far, measured as the final ones are (the
        queue wait and the time to the first token are the final Done's to tell)."""
        evaluated, generation_s = self.prompt_tokens - self.cached_tokens, now - self.first_token
        return Timings(
            queued_s=0.0,
            ttft_s=0.0,
            prompt_tokens_per_s=evaluated / self.prompt_s if self.prompt_s > 0 else 0.0,
            generation_tokens_per_s=(self.generated - 1) / generation_s if self.first_token else 0.0,
            prompt_s=self.prompt_s,
            generation_s=generation_s if self.first_token else 0.0,
        )


def measure(
    submitted: float,
    admitted: float,
    prompt_done: float,
    first_token: float,
    now: float,
    evaluated: int,
    generated: int,
) -> Timings:
    """Timings from a request's clock readings (0.0: that moment never came)."""
    prompt_time = (prompt_done or now) - admitted
    gen_time = now - first_token if first_token else 0.0
    return Timings(
        queued_s=admitted - submitted,
        ttft_s=(first_token - submitted) if first_token else 0.0,
        prompt_tokens_per_s=evaluated / prompt_time if prompt_time > 0 else 0.0,
        generation_tokens_per_s=(generated - 1) / gen_time if gen_time > 0 else 0.0,
        prompt_s=prompt_time,
        generation_s=gen_time,
    )


@dataclass(frozen=True)
class Done:
    finish_reason: FinishReason
    usage: Usage
    timings: Timings
    error: str | None = None  # set when finish_reason == "error"
    stop_word: str | None = None  # the stop string that ended the answer, if one did


Event = ReasoningDelta | ContentDelta | ToolCallDelta | ToolCall | TokenLogprob | Done


@dataclass
class Result:
    """A whole response, gathered from its events."""

    reasoning: str = ""
    content: str = ""
    done: Done | None = None
    tokens: list[int] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)

    def add(self, event: Event) -> None:
        if isinstance(event, ReasoningDelta):
            self.reasoning += event.text
        elif isinstance(event, ContentDelta):
            self.content += event.text
        elif isinstance(event, ToolCall):
            self.tool_calls.append(event)
        elif isinstance(event, TokenLogprob):
            self.logprobs.append(event)
        elif isinstance(event, Done):
            self.done = event

    def to_dict(self) -> dict:
        assert self.done is not None
        return {
            "reasoning": self.reasoning,
            "content": self.content,
            "finish_reason": self.done.finish_reason,
            "usage": {**asdict(self.done.usage), "total_tokens": self.done.usage.total_tokens},
            "timings": asdict(self.done.timings),
        }
