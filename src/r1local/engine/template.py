"""Render chat messages with the model's own chat template, plus DeepSeek-R1's rules.

The template comes from the GGUF (`tokenizer.chat_template`) and runs in Jinja2's immutable
sandbox configured as Hugging Face transformers does, so prompts match what the model was trained
on, in a child process bounded in time, memory and output (template_sandbox.py). For R1
distills (DeepSeek's recommendations):
- no system prompt: its text is folded into the first user turn;
- earlier assistant turns keep only their answer (reasoning is dropped);
- thinking on: the assistant turn is forced to start with "<think>\\n";
- thinking off: an empty think block "<think>\\n\\n</think>\\n\\n" so the model answers at once;
- a conversation with tools is rendered in R1's tool-call tokens (see tools.py).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

from ..errors import ModelFileError, UsageError
from . import tools
from .builtin_template import apply_builtin
from .template_sandbox import TemplateFailure, TemplateProcess, environment

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
EMPTY_THINK = THINK_OPEN + "\n\n" + THINK_CLOSE + "\n\n"  # thinking off: the model answers at once

# Used when a GGUF carries no chat template and llama.cpp knows none for its architecture.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


_OTHER_GGUF = "Use another GGUF of this model, or one converted with a current llama.cpp."


@dataclass(frozen=True)
class RenderedPrompt:
    text: str
    opens_think: bool  # the prompt ends inside an open <think> block


def _text(content: Any) -> Any:
    """OpenAI content parts ([{"type": "text", "text": ...}]) -> one string; others unchanged."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return content


def _answer_only(content: Any) -> Any:
    if isinstance(content, str) and THINK_CLOSE in content:
        return content.split(THINK_CLOSE)[-1].lstrip()
    return content


class ChatTemplate:
    """A compiled chat template. source=None uses llama.cpp's built-in template named `builtin`
    (chosen from the model's architecture), or ChatML when there is none (see is_fallback)."""

    def __init__(
        self,
        source: str | None,
        bos_token: str = "",
        eos_token: str = "",
        builtin: str | None = None,
        owner: str = "The model's",
    ):
        self.owner = owner  # whose template, in errors: "The model's", "The preset's"
        self.is_fallback = not source
        self.builtin = builtin if self.is_fallback and builtin != "chatml" else None
        self.source = source or CHATML_TEMPLATE
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.is_r1 = "<｜Assistant｜>" in self.source and THINK_CLOSE in self.source
        self.supports_tools = self.is_r1 and tools.speaks_r1_tools(self.source)
        try:
            environment().parse(self.source)  # here, so a broken template is known at load
        except jinja2.TemplateSyntaxError as e:
            raise ModelFileError(
                f"{owner} chat template is not valid Jinja ({e.message}, line {e.lineno}).", _OTHER_GGUF
            ) from None
        except RecursionError:
            raise ModelFileError(f"{owner} chat template nests too deeply to be read.", _OTHER_GGUF) from None
        self._process = TemplateProcess(self.source)
        weakref.finalize(self, self._process.close)  # its child process ends with it

    def render(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        think: bool = True,
        add_generation_prompt: bool = True,
        tool_list: list[dict] | None = None,
        continue_final: bool = True,
    ) -> RenderedPrompt:
        """A last assistant message is a prefill: the reply continues it (continue_final=False
        closes it and starts a new turn). `tool_list`: the functions the model may call."""
        msgs = [{**m, "content": _text(m.get("content")) or ""} for m in messages]
        prefill = None
        if continue_final and add_generation_prompt and len(msgs) > 1 and _is_prefill(msgs[-1]):
            prefill = msgs.pop()
        if tool_list and not self.supports_tools:
            raise UsageError(
                "This model's chat template has no tool calling.",
                "Use a DeepSeek-R1 model for tools, or send the request without them.",
                param="tools",
            )
        if self.is_r1:
            msgs = _r1_history(msgs, tools.tools_preamble(tool_list) if tool_list else "")
        if self.is_r1 and (tool_list or any(m.get("role") == "tool" or m.get("tool_calls") for m in msgs)):
            text = tools.render_r1(msgs, bos=self.bos_token, eos=self.eos_token)
            text += tools.ASSISTANT if add_generation_prompt else ""
        elif self.builtin:
            text = apply_builtin(self.builtin, msgs, add_generation_prompt)
        else:
            text = self._render_jinja(msgs, think, add_generation_prompt)
        if not (self.is_r1 and add_generation_prompt):
            return RenderedPrompt(text + (prefill["content"] if prefill else ""), opens_think=False)
        # Newer R1 templates already end with "<think>\n"; older ones stop at <｜Assistant｜>.
        if text.endswith(THINK_OPEN + "\n"):
            text = text[: -len(THINK_OPEN) - 1]
        elif text.endswith(THINK_OPEN):
            text = text[: -len(THINK_OPEN)]
        if prefill:
            return _continue_r1(text, prefill)
        if think:
            return RenderedPrompt(text + THINK_OPEN + "\n", opens_think=True)
        return RenderedPrompt(text + EMPTY_THINK, opens_think=False)

    def close(self) -> None:
        """End the template's child process (a later render starts another)."""
        self._process.close()

    def _render_jinja(self, msgs: list[dict], think: bool, add_generation_prompt: bool) -> str:
        try:
            return self._process.render(
                dict(
                    messages=msgs,
                    add_generation_prompt=add_generation_prompt,
                    bos_token=self.bos_token,
                    eos_token=self.eos_token,
                    enable_thinking=think,  # the switch Qwen3-style templates read
                )
            )
        except TemplateFailure as failure:
            verb = "refused" if failure.refused else "failed on"
            raise UsageError(f"{self.owner} chat template {verb} these messages: {failure}") from None


@functools.lru_cache(maxsize=16)
def preset_template(source: str, bos_token: str, eos_token: str) -> ChatTemplate:
    """A preset's chat template in place of the model's (Ollama's TEMPLATE), with the model's BOS and
    EOS, rendered in the same sandbox; compiled once per source (its child process starts on first use)."""
    return ChatTemplate(source, bos_token, eos_token, owner="The preset's")


def _is_prefill(message: Mapping[str, Any]) -> bool:
    """A final assistant message with text and no calls: the start of the reply."""
    return (
        message.get("role") == "assistant"
        and not message.get("tool_calls")
        and bool(message.get("content") or message.get("reasoning_content"))
    )


def _continue_r1(text: str, prefill: Mapping[str, Any]) -> RenderedPrompt:
    """Continue a prefilled R1 reply: its reasoning (given apart or as an open <think>) stays open
    when no answer follows it yet; an answer alone continues after an empty think block."""
    content = prefill.get("content") or ""
    reasoning = prefill.get("reasoning_content")
    if reasoning:
        if not content:
            return RenderedPrompt(f"{text}{THINK_OPEN}\n{reasoning}", opens_think=True)
        return RenderedPrompt(f"{text}{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{content}", opens_think=False)
    if content.lstrip().startswith(THINK_OPEN):
        return RenderedPrompt(text + content.lstrip(), opens_think=THINK_CLOSE not in content)
    return RenderedPrompt(text + EMPTY_THINK + content, opens_think=False)


def _r1_history(msgs: list[dict], preamble: str = "") -> list[dict]:
    """Fold system text (after the tools' preamble) into the first user turn; keep only the
    answer of assistant turns."""
    system = "\n\n".join(m["content"] for m in msgs if m.get("role") == "system" and m["content"])
    system = "\n\n".join(part for part in (preamble.rstrip(), system) if part)
    out = []
    for m in msgs:
        role = m.get("role")
        if role == "system":
            continue
        if role == "assistant":
            m = {k: v for k, v in m.items() if k != "reasoning_content"}
            m["content"] = _answer_only(m["content"])
        if role == "user" and system:
            m = {**m, "content": f"{system}\n\n{m['content']}"}
            system = ""
        out.append(m)
    if system:  # a system prompt with no user turn becomes the user turn
        out.insert(0, {"role": "user", "content": system})
    return out
