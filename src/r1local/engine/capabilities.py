"""What an engine can do with a model, declared before any request reaches it.

Each engine states its capabilities once (thinking, tools, grammar, embeddings, logprobs, a think
budget, streaming, its context); the request's preparation checks a request against them and
refuses what goes beyond with one 400 naming the capability, before any work. `/api/show`,
`/v1/models` and `r1local show` report the same declaration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import Unsupported
from .template import ChatTemplate


@dataclass(frozen=True)
class Capabilities:
    thinking: bool  # reasons in a think block before answering
    tools: bool  # function calls in its own tokens
    grammar: bool  # output constrained by a GBNF grammar or a JSON schema
    embeddings: bool
    logprobs: bool
    think_budget: bool  # closes the think block after a number of reasoning tokens
    logit_bias: bool  # token ids' logits shifted or banned
    streaming: bool = True
    context_length: int | None = None  # tokens one request may span; None: the engine behind does not say

    def ollama(self) -> list[str]:
        """Ollama's names for them, as /api/show lists them (clients pick models by these)."""
        return ["completion"] + [
            name
            for name, has in (("thinking", self.thinking), ("tools", self.tools), ("embedding", self.embeddings))
            if has
        ]

    def as_dict(self) -> dict:
        return asdict(self)

    def require(self, capability: str, model: str, param: str, hint: str | None = None) -> None:
        """One 400 naming the capability when the model lacks it (as Ollama words it)."""
        if not getattr(self, capability):
            raise Unsupported(f'"{model}" does not support {capability.replace("_", " ")}.', hint, param=param)


def declared(engine: str, template: ChatTemplate, context_length: int | None) -> Capabilities:
    """What `engine` does with a model of this chat template, known before loading it (for listings).
    llama.cpp: everything, with thinking and tools as the template allows. OpenVINO GenAI generates
    whole requests: nothing there steers generation token by token (a grammar, a lazy grammar for
    calls, closing the think block) or reads the logits."""
    if engine == "openvino":
        return Capabilities(
            thinking=template.is_r1,
            tools=False,
            grammar=False,
            embeddings=False,
            logprobs=False,
            think_budget=False,
            logit_bias=False,
            context_length=context_length,
        )
    return Capabilities(
        thinking=template.is_r1,
        tools=template.supports_tools,
        grammar=True,
        embeddings=True,
        logprobs=True,
        think_budget=template.is_r1,
        logit_bias=True,
        context_length=context_length,
    )
