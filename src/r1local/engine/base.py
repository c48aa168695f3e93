"""The one seam between the engines and everything above them.

An engine is loaded with a plan, takes a chat or a completion and answers with a Stream of the
same events (reasoning delta, content delta, done with usage and timings); the stream cancels;
the engine reports stats and closes. The CLI and the server only ever hold an `Engine`.

What makes an R1 distill behave like one lives here, once, for every engine: the model's own chat
template, `<think>\\n` forced or an empty think block, earlier reasoning dropped, the system
prompt folded in, and (where an engine has a fixed prompt budget) the oldest turns trimmed first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ContextOverflow
from .params import SamplingParams
from .stream import Stream
from .template import ChatTemplate, RenderedPrompt


class Engine(ABC):
    """A loaded model behind one engine. Subclasses set the attributes and implement `_submit`."""

    engine: ClassVar[str]  # "llama.cpp", "openvino"
    name: str
    path: Path  # the model file or folder it was loaded from
    template: ChatTemplate
    n_ctx: int  # tokens one request may span (prompt + answer)
    n_parallel: int  # requests generated at once
    n_gpu_layers: int = 0  # llama.cpp's offload; 0 elsewhere
    device: str = "CPU"  # where it runs, as the engine names it
    prompt_limit: int | None = None  # a compiled maximum prompt length (the NPU's static shapes)
    info: Any = None  # the GGUF's metadata when loaded from a GGUF
    load_note: str | None = None  # one line on how the load departed from its plan, for the user

    def memory_bytes(self) -> tuple[int, int] | None:
        """(RAM, VRAM) the engine allocated for the model, when it can tell."""
        return None

    @property
    def is_r1(self) -> bool:
        return self.template.is_r1

    # -- requests --
    def chat(self, messages: list[dict], *, think: bool | None = None,
             params: SamplingParams | None = None) -> Stream:
        think = self.is_r1 if think is None else think
        rendered, tokens = self._fit_history(messages, think)
        return self._submit(tokens, params or SamplingParams(), split_reasoning=self.is_r1,
                            in_reasoning=rendered.opens_think)

    def complete(self, prompt: str, *, params: SamplingParams | None = None) -> Stream:
        tokens = self.prompt_tokens(prompt)
        self._check_prompt(len(tokens))
        return self._submit(tokens, params or SamplingParams(), split_reasoning=False, in_reasoning=False)

    def _fit_history(self, messages: list[dict], think: bool) -> tuple[RenderedPrompt, list[int]]:
        """Render the chat; past a compiled prompt limit drop the oldest turns (never the last
        user turn) until it fits, and refuse clearly when even that one is too long."""
        messages = list(messages)
        while True:
            rendered = self.template.render(messages, think=think)
            tokens = self.prompt_tokens(rendered.text)
            if self.prompt_limit is None or len(tokens) <= self.prompt_limit:
                return rendered, tokens
            dropped = drop_oldest_turn(messages)
            if dropped is None:
                self._check_prompt(len(tokens))
            messages = dropped

    def _check_prompt(self, n_tokens: int) -> None:
        if self.prompt_limit is not None and n_tokens > self.prompt_limit:
            raise ContextOverflow(
                f"The prompt is {n_tokens} tokens; this model was compiled for prompts of at most "
                f"{self.prompt_limit} on the {self.device}.",
                "Shorten the prompt, or load it with a larger maximum prompt length "
                "(R1LOCAL_NPU_MAX_PROMPT; compiling takes longer).",
            )

    @abstractmethod
    def prompt_tokens(self, text: str) -> list[int]:
        """The token ids of a rendered prompt, with the beginning-of-text token the model expects."""

    @abstractmethod
    def _submit(self, tokens: list[int], params: SamplingParams, *, split_reasoning: bool,
                in_reasoning: bool) -> Stream:
        """Queue one generation; raise Overloaded (503) when the queue is full."""

    @abstractmethod
    def stats(self) -> dict:
        """Slots, queue and counters, for /metrics."""

    @abstractmethod
    def close(self) -> None:
        """Finish every request (cancelled) and free the model."""

    def describe(self) -> dict:
        """What `ps`-style listings show about the engine in use."""
        return {"engine": self.engine, "device": self.device, "context_length": self.n_ctx,
                "parallel": self.n_parallel}

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def drop_oldest_turn(messages: list[dict]) -> list[dict] | None:
    """The history without its oldest exchange (a user turn and the replies up to the next user
    turn); system messages stay. None when only the last user turn is left."""
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if len(users) < 2:
        return None
    first, second = users[0], users[1]
    return [m for i, m in enumerate(messages) if not (first <= i < second and m.get("role") != "system")]
