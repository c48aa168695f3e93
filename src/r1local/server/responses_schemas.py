"""OpenAI's Responses request, and its translation into the one chat request every dialect builds:
`instructions` and `input` (a string, or message, function_call, function_call_output and
reasoning items) as chat messages after a stored conversation's, function tools and tool_choice,
reasoning.effort as the think budget, text.format's JSON schema as a grammar, the sampling fields."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ..errors import UsageError
from ..request import ChatRequest, ResponseFormat, Sampling
from ..request.chat import Effort
from ..request.tools import (
    MAX_TOOLS,
    FunctionName,
    FunctionSpec,
    NamedToolChoice,
    Tool,
    ToolChoice,
)
from .schema_base import MAX_MESSAGES, MAX_PARTS, SEED, TOP_K, Strict, neutral_only

EFFORTS: dict[str, Effort] = {
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
TEXT_PARTS = ("input_text", "output_text", "text", "refusal", "reasoning_text", "summary_text")


class Part(Strict):
    type: str = Field(max_length=64)
    text: str | None = None
    refusal: str | None = None


Parts = str | Annotated[list[Part], Field(max_length=MAX_PARTS)]


class InputItem(Strict):
    type: str | None = Field(None, max_length=64)  # None: a message ({"role", "content"})
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: Parts | None = None
    call_id: str | None = Field(None, max_length=256)  # function_call's and function_call_output's
    name: str | None = Field(None, max_length=128)
    arguments: str | None = None
    output: Parts | None = None


class FunctionTool(Strict):
    type: str = Field(max_length=64)
    name: str | None = Field(None, min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionChoice(Strict):
    type: Literal["function"]
    name: str


class ReasoningConfig(Strict):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: str | None = None  # R1's reasoning comes back whole, never summarised
    generate_summary: str | None = None


class TextFormat(Strict):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(Strict):
    format: TextFormat | None = None
    verbosity: str | None = None


class ResponsesRequest(Strict):
    model: str | None = None  # none, or a name not served here: the default model, as on the other OpenAI routes
    input: str | Annotated[list[InputItem], Field(max_length=MAX_MESSAGES)]
    instructions: str | None = None
    tools: list[FunctionTool] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    reasoning: ReasoningConfig | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    top_k: TOP_K | None = None  # llama.cpp's extension
    seed: SEED | None = None
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = Field(None, max_length=256)
    metadata: dict[str, str] | None = Field(None, max_length=16)
    truncation: Literal["auto", "disabled"] | None = None
    background: bool | None = None
    user: str | None = None
    # llama-server's extensions to the stream: llama-server's `timings` on each delta, prompt progress events
    timings_per_token: bool = False
    return_progress: bool = False

    @field_validator("background")
    @classmethod
    def _in_the_foreground(cls, background: bool | None) -> bool | None:
        return neutral_only(background, (None, False), "background")

    def to_request(self, history: list[dict]) -> ChatRequest:
        """The body, after the stored conversation `history`, as the one chat request (a pure
        translation: the policy is applied below)."""
        effort = self.reasoning.effort if self.reasoning else None
        fmt = self.text.format if self.text and self.text.format and self.text.format.type != "text" else None
        return ChatRequest(
            chat_messages(self.instructions, history, self.input),
            think=False if effort == "none" else None,
            effort=EFFORTS.get(effort) if effort else None,
            tools=self.functions(),
            tool_choice=tool_choice(self.tool_choice),
            parallel_tool_calls=self.parallel_tool_calls,
            response_format=ResponseFormat(fmt.schema_, "text.format.schema") if fmt else None,
            sampling=Sampling(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, seed=self.seed),
            max_tokens=self.max_output_tokens,
            trim=self.truncation != "disabled",
            continue_final=False,
        )

    def functions(self) -> list[Tool] | None:
        """The client's function tools; OpenAI's hosted tools (web_search, file_search, a custom
        tool's grammar...) are left out: nothing here runs them, and the model sees only functions."""
        tools = [
            Tool(
                function=FunctionSpec(name=t.name, description=t.description, parameters=t.parameters, strict=t.strict)
            )
            for t in self.tools or []
            if t.type == "function" and t.name
        ]
        return tools or None


def tool_choice(choice: Literal["none", "auto", "required"] | FunctionChoice | None) -> ToolChoice | None:
    if isinstance(choice, FunctionChoice):
        return NamedToolChoice(function=FunctionName(name=choice.name))
    return choice


def _text(parts: Parts | None, where: str) -> str:
    if isinstance(parts, str) or parts is None:
        return parts or ""
    for part in parts:
        if part.type not in TEXT_PARTS:
            raise UsageError(f"Content of type {part.type!r} is not read here: R1 distills read text.", param=where)
    return "".join(part.text or part.refusal or "" for part in parts)


def chat_messages(instructions: str | None, history: list[dict], items: str | list[InputItem]) -> list[dict]:
    """The instructions, the stored conversation, then this request's items: consecutive
    function_call items join the assistant turn before them, outputs become tool messages, and
    reasoning items are read and dropped (the template drops earlier reasoning anyway)."""
    chat: list[dict[str, Any]] = [{"role": "system", "content": instructions}] if instructions else []
    chat += history
    if isinstance(items, str):
        return chat + [{"role": "user", "content": items}]
    for i, item in enumerate(items):
        where = f"input.{i}"
        if item.type in (None, "message") and item.role:
            role = "system" if item.role == "developer" else item.role
            chat.append({"role": role, "content": _text(item.content, f"{where}.content")})
        elif item.type == "function_call":
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name or "", "arguments": item.arguments or "{}"},
            }
            if not (chat and chat[-1]["role"] == "assistant"):
                chat.append({"role": "assistant", "content": ""})
            chat[-1].setdefault("tool_calls", []).append(call)
        elif item.type == "function_call_output":
            output = _text(item.output, f"{where}.output")
            chat.append({"role": "tool", "tool_call_id": item.call_id, "content": output})
        elif item.type != "reasoning":
            kept = " (this server keeps no items: send the item itself)" if item.type == "item_reference" else ""
            raise UsageError(f"Input items of type {item.type!r} are not read here{kept}.", param=where)
    return chat
