"""The R1 policy, applied once to a ChatRequest for one engine, below every front end:

- the request is checked against the engine's declared capabilities first (one 400 naming the
  capability, before any work);
- thinking follows the model: R1 reasons unless told not to, a model without thinking answers at
  once, and only an explicit request for thinking on it is refused (as Ollama does);
- a think budget of 0 turns thinking off; the server's default budget applies where the engine
  has budgets;
- a JSON format or grammar turns thinking off so the grammar shapes the whole answer;
- tools become a (lazy) call grammar with the tokens that switch it on;
- max_tokens is clamped to the context.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine import tools as r1
from ..engine.base import Engine
from ..engine.capabilities import Capabilities
from ..engine.params import SamplingParams
from ..engine.stream import Stream
from ..engine.template import THINK_CLOSE
from ..errors import UsageError
from .chat import ChatRequest
from .grammar import json_grammar
from .logit_bias import biased
from .sampling import sampling_params
from .tools import plan_tools


@dataclass(frozen=True)
class Prepared:
    """What the engine is asked for, exactly."""

    messages: list[dict]
    think: bool
    params: SamplingParams
    tool_list: list[dict] | None
    calls: bool  # tool calls come back as events (False: tool_choice "none")
    continue_final: bool
    trim: bool
    template: str | None = None  # a preset's chat template in place of the model's

    def start(self, engine: Engine) -> Stream:
        return engine.chat(
            self.messages,
            think=self.think,
            params=self.params,
            tool_list=self.tool_list,
            calls=self.calls,
            continue_final=self.continue_final,
            trim=self.trim,
            template=self.template,
        )

    def prompt(self, engine: Engine) -> str:
        """The prompt the model would read (before any trimming)."""
        return (
            engine.chat_template(self.template)
            .render(self.messages, think=self.think, tool_list=self.tool_list, continue_final=self.continue_final)
            .text
        )

    def count(self, engine: Engine) -> int:
        """The tokens of that prompt."""
        return len(engine.prompt_tokens(self.prompt(engine)))


def submit(request: ChatRequest, engine: Engine, choice: int = 0) -> Stream:
    """Prepare and start choice `choice` of `request` (blocking: run it off the event loop)."""
    return prepare(request, engine, choice).start(engine)


def prepare(request: ChatRequest, engine: Engine, choice: int = 0) -> Prepared:
    """Choice i of n samples with seed + i, so a seeded request stays reproducible."""
    caps = engine.capabilities
    check(request, caps, engine.name, engine.engine)

    think = caps.thinking if request.think is None else request.think
    budget, asked = request.budget()
    if not asked and not caps.think_budget:  # the server's default budget, where the engine has budgets
        budget = None
    think = think and budget != 0 and not request.constrained
    if think and budget is not None:
        require(caps, "think_budget", "think_budget", engine.name, engine.engine)

    # a forced call follows the reasoning, which the grammar can only see end as one token
    reasons_first = bool(request.tools) and think and engine.gguf_vocab().single_token(THINK_CLOSE) is not None
    plan = plan_tools(request.tools, request.tool_choice, request.parallel_tool_calls, thinking=reasons_first)
    grammar = plan.grammar if plan else _answer_grammar(request)
    seed = request.sampling.seed
    params = sampling_params(
        caps.context_length,
        max_tokens=request.max_tokens,
        stop=list(request.stop),
        grammar=grammar,
        context_limit=request.context_limit,
        logprobs=request.logprobs,
        **{**request.sampling.fields(), "seed": None if seed is None else seed + choice},
    )
    params = biased(params, request.logit_bias, engine)
    params.think_budget = budget if think else None
    if plan and plan.grammar and plan.lazy:
        triggers = [engine.gguf_vocab().single_token(marker) for marker in (r1.CALLS_BEGIN, r1.CALL_BEGIN)]
        params.grammar_triggers = [token for token in triggers if token is not None]
        if not params.grammar_triggers:  # nothing can switch it on: calls are read, unconstrained
            params.grammar = None
    if plan and plan.grammar and not plan.lazy and think and not reasons_first:
        think = False
    return Prepared(
        request.messages,
        think,
        params,
        plan.functions if plan else None,
        calls=bool(plan and plan.calls),
        continue_final=request.continue_final,
        trim=request.trim,
        template=request.template,
    )


def _answer_grammar(request: ChatRequest) -> str | None:
    if request.grammar is not None:
        return request.grammar
    if request.response_format is not None:
        return json_grammar(request.response_format.schema, request.response_format.param)
    return None


def check(request: ChatRequest, caps: Capabilities, model: str, engine: str) -> None:
    """The request against what the engine declares, before any work: one 400 naming what it lacks.
    (A think budget is checked in prepare: it matters only where thinking stays on.)"""
    if request.think:
        require(caps, "thinking", "think", model, engine)
    if request.tools and request.constrained:
        raise UsageError("A response format and tools cannot be combined; send one of them.", param="response_format")
    if request.tools:
        require(caps, "tools", "tools", model, engine)
    if request.constrained:
        param = request.response_format.param if request.response_format else "grammar"
        require(caps, "grammar", param, model, engine)
    if request.logprobs is not None:
        require(caps, "logprobs", "logprobs", model, engine)
    if request.logit_bias:
        require(caps, "logit_bias", "logit_bias", model, engine)


def check_generation(params: SamplingParams, engine: Engine) -> None:
    """The raw-completion routes' check of their settings against the engine's capabilities."""
    for capability, asked in (
        ("grammar", params.grammar),
        ("logprobs", params.logprobs is not None),
        ("logit_bias", params.logit_bias),
    ):
        if asked:
            require(engine.capabilities, capability, capability, engine.name, engine.engine)


def require(caps: Capabilities, capability: str, param: str, model: str, engine: str) -> None:
    caps.require(capability, model, param, WHAT_TO_DO.get(engine, WHAT_TO_DO[None]))


WHAT_TO_DO = {
    "openvino": "The OpenVINO engine cannot; load the model on llama.cpp (drop @openvino), or send the request "
    "without it.",
    "upstream": "The server behind it is not asked for it; send the request without it.",
    None: "Send the request without it, or use a DeepSeek-R1 model, which does.",
}
