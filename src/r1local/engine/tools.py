"""Tool calls in DeepSeek-R1's own tokens: how tools and earlier calls enter the prompt, and how
the model's calls are read back out of its text.

The R1 distills' template carries the call syntax but never renders the tool list, and it
mis-renders a history with several tool rounds; as llama.cpp does (common/chat.cpp, its
models/templates/llama-cpp-deepseek-r1.jinja), conversations with tools are rendered here:

    <｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
    ```json
    {"arg": 1}
    ```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>
    <｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>RESULT<｜tool▁output▁end｜><｜tool▁outputs▁end｜>
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from .events import ContentDelta, ReasoningDelta, ToolCall
from .reasoning import partial_tag_len


CALLS_BEGIN, CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
CALL_BEGIN, CALL_END, SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
OUTPUTS_BEGIN, OUTPUTS_END = "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>"
OUTPUT_BEGIN, OUTPUT_END = "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"
USER, ASSISTANT = "<｜User｜>", "<｜Assistant｜>"

# llama.cpp's wording (models/templates/llama-cpp-deepseek-r1.jinja), so prompts match its server's
_PREAMBLE = (
    "You can call any of the following function tools to satisfy the user's requests: {tools}\n\n"
    "Example function tool call syntax:\n\n"
    f"{CALLS_BEGIN}{CALL_BEGIN}function{SEP}example_function_name\n"
    "```json\n{{\n  \"arg1\": \"some_value\"\n  ...\n}}\n```\n"
    f"{CALL_END}{CALLS_END}\n\n"
)
_CALL = re.compile(
    re.escape(CALL_BEGIN) + r"\s*(?:function)?\s*" + re.escape(SEP) + r"\s*([^\n`]+?)\s*\n"
    r"```(?:json)?\s*\n?(.*?)\s*```\s*" + re.escape(CALL_END),
    re.DOTALL,
)


def speaks_r1_tools(template_source: str) -> bool:
    return CALLS_BEGIN in template_source and SEP in template_source


def tools_preamble(tools: list[dict]) -> str:
    functions = [tool.get("function", tool) for tool in tools]
    return _PREAMBLE.format(tools=json.dumps(functions, indent=2, ensure_ascii=False))


def arguments_text(arguments: Any) -> str:
    """OpenAI sends arguments as JSON text, Ollama as an object: the prompt shows compact JSON."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return arguments
    return json.dumps(arguments, ensure_ascii=False)


def render_call(call: dict) -> str:
    function = call.get("function", call)
    return (f"{CALL_BEGIN}function{SEP}{function.get('name', '')}\n```json\n"
            f"{arguments_text(function.get('arguments', {}))}\n```{CALL_END}")


def render_r1(messages: list[dict], *, bos: str, eos: str) -> str:
    """The prompt of a conversation with tools (system text already folded into the first user
    turn), without the generation prompt."""
    out, in_outputs = [bos], False
    for message in messages:
        role, content = message.get("role"), message.get("content") or ""
        if role == "tool":
            out.append("\n" + OUTPUT_BEGIN if in_outputs else OUTPUTS_BEGIN + OUTPUT_BEGIN)
            out.append(f"{content}{OUTPUT_END}")
            in_outputs = True
            continue
        if in_outputs:
            out.append(OUTPUTS_END + eos)
            in_outputs = False
        if role == "user":
            out.append(USER + content)
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            rendered = "\n".join(render_call(call) for call in calls)
            out.append(ASSISTANT + content + (CALLS_BEGIN + rendered + CALLS_END if calls else "") + eos)
    if in_outputs:
        out.append(OUTPUTS_END + eos)
    return "".join(out)


def parse_call(text: str, index: int) -> ToolCall | None:
    match = _CALL.search(text)
    if match is None:
        return None
    arguments = match.group(2).strip()
    try:
        arguments = json.dumps(json.loads(arguments), ensure_ascii=False)
    except ValueError:
        pass  # kept as written: the client sees what the model produced
    return ToolCall(index, f"call_{uuid.uuid4().hex[:24]}", match.group(1).strip(), arguments)


class ToolCallParser:
    """Streaming: feed() text (answer or reasoning) and get back the text that is not part of a
    call, plus every call completed so far. A call block starts at <｜tool▁calls▁begin｜> (or a
    bare <｜tool▁call▁begin｜>, which the smaller distills sometimes write); from there on
    nothing is text."""

    def __init__(self) -> None:
        self._text = ""  # held back: might be the start of a marker
        self._calls = ""  # inside the call block
        self.in_calls = False
        self.count = 0
        self._kind: type[ContentDelta | ReasoningDelta] = ContentDelta  # what held-back text is

    def feed(self, text: str) -> tuple[str, list[ToolCall]]:
        if not self.in_calls:
            self._text += text
            starts = [i for i in (self._text.find(CALLS_BEGIN), self._text.find(CALL_BEGIN)) if i >= 0]
            if not starts:
                held = max(partial_tag_len(self._text, CALLS_BEGIN), partial_tag_len(self._text, CALL_BEGIN))
                out, self._text = self._text[: len(self._text) - held], self._text[len(self._text) - held:]
                return out, []
            start = min(starts)
            out, text, self._text = self._text[:start], self._text[start:], ""
            self.in_calls = True
        else:
            out = ""
        self._calls += text
        return out, self._complete_calls()

    def flush(self) -> tuple[str, list[ToolCall]]:
        out, self._text = self._text, ""
        return out, self._complete_calls()

    def route(self, events: list, final: bool = False) -> list:
        """Reasoning and answer deltas with the call block taken out of them, and the calls."""
        routed: list = []
        for event in events:
            self._kind = type(event)
            text, calls = self.feed(event.text)
            routed += ([self._kind(text)] if text else []) + calls
        if final:
            text, calls = self.flush()
            routed += ([self._kind(text)] if text else []) + calls
        return routed

    def _complete_calls(self) -> list[ToolCall]:
        calls = []
        while (end := self._calls.find(CALL_END)) >= 0:
            call = parse_call(self._calls[: end + len(CALL_END)], self.count)
            self._calls = self._calls[end + len(CALL_END):]
            if call is not None:
                calls.append(call)
                self.count += 1
        return calls

