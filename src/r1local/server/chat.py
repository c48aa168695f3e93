"""One chat request handed to the engine, the same way from both dialects: the thinking switch
checked against the model, tools planned into a grammar, a final assistant message continued."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..engine import tools as r1
from ..engine.base import Engine
from ..engine.params import SamplingParams
from ..engine.stream import Stream
from ..engine.template import THINK_CLOSE
from ..errors import UsageError
from .logit_bias import LogitBias, biased
from .tools import Tool, ToolChoice, plan_tools


# reasoning_effort (OpenAI) and think levels (Ollama) as reasoning budgets; "high" is unlimited
EFFORT_BUDGETS = {"minimal": 256, "low": 1024, "medium": 4096, "high": None}


def budget_of(tokens: int | None, effort: str | None, default: int | None) -> int | None:
    """An explicit budget, else the effort's, else the server's (--think-budget)."""
    if tokens is not None:
        return tokens
    return EFFORT_BUDGETS[effort] if effort in EFFORT_BUDGETS else default


@dataclass
class ChatSubmission:
    messages: list[dict]
    think: bool | None  # None: the model's default
    sampling: Callable[[int, str | None], SamplingParams]  # (context, grammar) -> settings
    grammar: str | None = None  # a response format's
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    continue_final: bool = True
    trim: bool = True  # drop the oldest turns of a chat too long for the context
    think_budget: int | None = None  # reasoning tokens before the engine closes the think block
    logit_bias: LogitBias | None = None

    def __call__(self, model: Engine) -> Stream:
        if self.think and not model.is_r1:  # as Ollama answers
            raise UsageError(f'"{model.name}" does not support thinking.', param="think")
        think = model.is_r1 if self.think is None else self.think
        think = think and self.think_budget != 0
        if self.tools and self.grammar:
            raise UsageError("A response format and tools cannot be combined; send one of them.",
                             param="response_format")
        if self.tools and not model.template.supports_tools:
            raise UsageError(f'"{model.name}" does not support tools: its chat template has no tool calls.',
                             "Use a DeepSeek-R1 model for tools.", param="tools")
        # a forced call follows the reasoning, which the grammar can only see end as one token
        reasons_first = bool(self.tools) and think and model.gguf_vocab().single_token(THINK_CLOSE) is not None
        plan = plan_tools(self.tools, self.tool_choice, self.parallel_tool_calls, thinking=reasons_first)
        params = biased(self.sampling(model.n_ctx, plan.grammar if plan else self.grammar), self.logit_bias, model)
        params.think_budget = self.think_budget
        if plan and plan.grammar and plan.lazy:
            triggers = [model.gguf_vocab().single_token(marker) for marker in (r1.CALLS_BEGIN, r1.CALL_BEGIN)]
            params.grammar_triggers = [token for token in triggers if token is not None]
            if not params.grammar_triggers:  # nothing can switch it on: calls are read, unconstrained
                params.grammar = None
        if plan and plan.grammar and not plan.lazy and think and not reasons_first:
            think = False
        return model.chat(self.messages, think=think, params=params, tool_list=plan.functions if plan else None,
                          calls=bool(plan and plan.grammar), continue_final=self.continue_final, trim=self.trim)

    def count(self, model: Engine) -> int:
        """The tokens of the prompt this request renders to (what it would submit, untrimmed)."""
        think = (model.is_r1 if self.think is None else self.think) and self.think_budget != 0
        functions = [tool.model_dump(exclude_none=True) for tool in self.tools or []] or None
        rendered = model.template.render(self.messages, think=think, tool_list=functions,
                                         continue_final=self.continue_final)
        return len(model.prompt_tokens(rendered.text))
