"""The one chat request every front end builds: the CLI (in-process and through a resident
server) and each API dialect translate what they were given into this plain value, and nothing
else; what it means for a model is decided once, in prepare.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .logit_bias import LogitBias
from .sampling import Sampling
from .tools import Tool, ToolChoice

# reasoning_effort (OpenAI) and think levels (Ollama) as reasoning budgets; "high" is unlimited
EFFORT_BUDGETS = {"minimal": 256, "low": 1024, "medium": 4096, "high": None}


Effort = Literal["minimal", "low", "medium", "high"]


@dataclass(frozen=True)
class ResponseFormat:
    """JSON output: any JSON object (schema None) or JSON following `schema`. `param` names the
    request field it came from, for errors."""

    schema: dict[str, Any] | None = None
    param: str = "response_format"


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict]
    think: bool | None = None  # None: the model's default (R1 reasons, others answer at once)
    think_budget: int | None = None  # the request's own reasoning budget (0: no reasoning)
    effort: Effort | None = None  # a budget by level, when think_budget is not given
    default_think_budget: int | None = None  # the server's --think-budget, where the engine has budgets
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    grammar: str | None = None  # GBNF the answer follows
    response_format: ResponseFormat | None = None  # JSON the answer follows
    sampling: Sampling = field(default_factory=Sampling)
    logit_bias: LogitBias | None = None
    max_tokens: int | None = None  # None: until the context is full
    stop: list[str] = field(default_factory=list)
    n: int = 1  # choices, each sampled with seed + its index
    logprobs: int | None = None  # None: none; k: each token's and its k likeliest alternatives
    context_limit: int | None = None  # use at most this much of the loaded context (Ollama's num_ctx)
    trim: bool = True  # drop the oldest turns of a chat too long for the context
    continue_final: bool = True  # a last assistant message is continued, not answered
    template: str | None = None  # a preset's Jinja chat template in place of the model's (presets.py)

    def budget(self) -> tuple[int | None, bool]:
        """The reasoning budget (None: unlimited) and whether it was demanded (a number of tokens)
        rather than a hint (an effort level, the server's default) that engines without budgets ignore."""
        if self.think_budget is not None:
            return self.think_budget, True
        if self.effort is not None:
            return EFFORT_BUDGETS[self.effort], False
        return self.default_think_budget, False

    @property
    def constrained(self) -> bool:
        """Whether a grammar or a JSON format shapes the answer."""
        return self.grammar is not None or self.response_format is not None
