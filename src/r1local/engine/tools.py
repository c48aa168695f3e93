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

from .events import ContentDelta, ReasoningDelta, ToolCall, ToolCallDelta
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
    '```json\n{{\n  "arg1": "some_value"\n  ...\n}}\n```\n'
    f"{CALL_END}{CALLS_END}\n\n"
)
_CALL = re.compile(
    re.escape(CALL_BEGIN) + r"\s*(?:function)?\s*" + re.escape(SEP) + r"\s*([^\n`]+?)\s*\n"
    r"```(?:json)?\s*\n?(.*?)\s*```\s*" + re.escape(CALL_END),
    re.DOTALL,
)

# a call's head, up to where its JSON arguments start, and the fence that ends them
_HEAD = re.compile(
    re.escape(CALL_BEGIN) + r"\s*(?:function)?\s*" + re.escape(SEP) + r"\s*([^\n`]+?)[ \t]*\n"
    r"```(?:json)?[ \t]*\n"
)
_FENCE_END = re.compile(r"\s*```\s*$")


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
    return (
        f"{CALL_BEGIN}function{SEP}{function.get('name', '')}\n```json\n"
        f"{arguments_text(function.get('arguments', {}))}\n```{CALL_END}"
    )


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


def _normalised(arguments: str) -> str:
    """Compact JSON, or the text as written when it is not JSON (the client sees what the model produced)."""
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False)
    except ValueError:
        return arguments.strip()


def parse_call(text: str, index: int) -> ToolCall | None:
    match = _CALL.search(text)
    if match is None:
        return None
    return ToolCall(index, f"call_{uuid.uuid4().hex[:24]}", match.group(1).strip(), _normalised(match.group(2)))


class ToolCallParser:
    """Streaming: feed() text (answer or reasoning) and get back the text that is not part of a
    call, plus each call's events so far: ToolCallDelta as it forms (its name once the header is
    read, then pieces of its arguments, holding back what may be the start of the call's end) and
    ToolCall once complete. A call block starts at <｜tool▁calls▁begin｜> (or a bare
    <｜tool▁call▁begin｜>, which the smaller distills sometimes write); from there on nothing is text."""

    def __init__(self) -> None:
        self._text = ""  # held back: might be the start of a marker
        self._calls = ""  # inside the call block, not yet read into calls
        self._open: ToolCallDelta | None = None  # the call whose arguments are streaming
        self._sent = 0  # characters of its arguments already sent
        self.in_calls = False
        self.count = 0
        self._kind: type[ContentDelta | ReasoningDelta] = ContentDelta  # what held-back text is

    def feed(self, text: str) -> tuple[str, list]:
        if not self.in_calls:
            self._text += text
            starts = [i for i in (self._text.find(CALLS_BEGIN), self._text.find(CALL_BEGIN)) if i >= 0]
            if not starts:
                held = max(partial_tag_len(self._text, CALLS_BEGIN), partial_tag_len(self._text, CALL_BEGIN))
                out, self._text = self._text[: len(self._text) - held], self._text[len(self._text) - held :]
                return out, []
            start = min(starts)
            out, text, self._text = self._text[:start], self._text[start:], ""
            self.in_calls = True
        else:
            out = ""
        self._calls += text
        return out, self._read_calls()

    def flush(self) -> tuple[str, list]:
        out, self._text = self._text, ""
        return out, self._read_calls()

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

    def _read_calls(self) -> list:
        events: list = []
        while True:
            head = _HEAD.search(self._calls) if self._open is None else None
            if head and CALL_END not in self._calls[: head.start()]:
                self._open = ToolCallDelta(self.count, f"call_{uuid.uuid4().hex[:24]}", head.group(1).strip(), "")
                self._calls, self._sent = self._calls[head.end() :], 0
                events.append(self._open)
            end = self._calls.find(CALL_END)
            if end < 0:
                if self._open is not None:  # send what cannot be the start of the call's end
                    arguments = self._calls
                    held = partial_tag_len(arguments, CALL_END)
                    safe = len(arguments[: len(arguments) - held].rstrip(" \t\r\n`"))
                    events += self._arguments(arguments[:safe])
                return events
            block, self._calls = self._calls[:end], self._calls[end + len(CALL_END) :]
            if self._open is not None:
                arguments = _FENCE_END.sub("", block)
                events += self._arguments(arguments)
                events.append(ToolCall(self.count, self._open.id, self._open.name, _normalised(arguments)))
                self._open = None
                self.count += 1
            elif (call := parse_call(block + CALL_END, self.count)) is not None:  # a header never seen whole
                events.append(call)
                self.count += 1

    def _arguments(self, arguments: str) -> list[ToolCallDelta]:
        assert self._open is not None
        piece, self._sent = arguments[self._sent :], max(self._sent, len(arguments))
        return [ToolCallDelta(self._open.index, self._open.id, self._open.name, piece)] if piece else []
