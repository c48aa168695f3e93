"""Anthropic's Messages request, and its translation into the one chat request every dialect
builds: the system prompt, text, tool_use, tool_result and thinking blocks as chat messages,
tools with their input_schema, tool_choice, thinking's budget, the sampling fields."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Field

from ..errors import UsageError
from ..request import ChatRequest, Sampling
from ..request.tools import (
    MAX_TOOLS,
    FunctionName,
    FunctionSpec,
    NamedToolChoice,
    Tool,
    ToolChoice,
)
from .schema_base import BUDGET, MAX_MESSAGES, MAX_PARTS, MAX_STOPS, STOP, TOP_K, Strict


class ContentBlock(Strict):
    type: str = Field(max_length=64)
    text: str | None = None
    id: str | None = Field(None, max_length=256)  # tool_use's
    name: str | None = Field(None, max_length=128)
    input: Any = None
    tool_use_id: str | None = Field(None, max_length=256)  # tool_result's
    content: str | Annotated[list[ContentBlock], Field(max_length=MAX_PARTS)] | None = None
    is_error: bool | None = None
    thinking: str | None = None  # thinking's; its signature is not checked
    signature: str | None = None


Content = str | Annotated[list[ContentBlock], Field(max_length=MAX_PARTS)]


class Message(Strict):
    role: Literal["user", "assistant", "system"]  # system: instructions mid-conversation (Claude Code sends them)
    content: Content


class ToolSpec(Strict):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None  # "custom", or one of Anthropic's server tools (not run here)


class ToolChoiceSpec(Strict):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingSpec(Strict):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: BUDGET | None = None


class CountTokensRequest(Strict):
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    system: Content | None = None
    tools: list[ToolSpec] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: ToolChoiceSpec | None = None
    thinking: ThinkingSpec | None = None

    def to_request(self) -> ChatRequest:
        """The body as the one chat request (a pure translation: the policy is applied below)."""
        choice = self.tool_choice
        return ChatRequest(
            chat_messages(self.system, self.messages),
            think=False if self.thinking and self.thinking.type == "disabled" else None,
            think_budget=self.thinking.budget_tokens if self.thinking else None,
            tools=self.functions(),
            tool_choice=tool_choice(choice),
            parallel_tool_calls=None
            if choice is None or choice.disable_parallel_tool_use is None
            else not choice.disable_parallel_tool_use,
        )

    def functions(self) -> list[Tool] | None:
        """The client's own tools; Anthropic's server tools (web search...) are for its API to run."""
        tools = [
            Tool(function=FunctionSpec(name=t.name, description=t.description, parameters=t.input_schema))
            for t in self.tools or []
            if t.type in (None, "custom")
        ]
        return tools or None


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    stop_sequences: list[STOP] | None = Field(None, max_length=MAX_STOPS)
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    top_k: TOP_K | None = None
    stream: bool = False
    metadata: dict[str, Any] | None = None

    def to_request(self) -> ChatRequest:
        return replace(
            super().to_request(),
            max_tokens=self.max_tokens,
            stop=list(self.stop_sequences or []),
            sampling=Sampling(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k),
        )


def tool_choice(choice: ToolChoiceSpec | None) -> ToolChoice | None:
    if choice is None or choice.type == "auto":
        return None if choice is None else "auto"
    if choice.type == "tool":
        if not choice.name:
            raise UsageError('tool_choice of type "tool" needs the tool\'s name.', param="tool_choice.name")
        return NamedToolChoice(function=FunctionName(name=choice.name))
    return "required" if choice.type == "any" else "none"


def _text(content: Content | None, where: str) -> str:
    if isinstance(content, str) or content is None:
        return content or ""
    parts = []
    for block in content:
        if block.type != "text":
            raise UsageError(
                f"Content blocks of type {block.type!r} are not read here: R1 distills read text.", param=where
            )
        parts.append(block.text or "")
    return "\n".join(parts)


def chat_messages(system: Content | None, messages: list[Message]) -> list[dict]:
    """Anthropic's turns as chat messages: a user turn's tool_result blocks become tool messages
    (before its text), an assistant turn's tool_use blocks its calls and its thinking its reasoning."""
    chat: list[dict[str, Any]] = [{"role": "system", "content": text}] if (text := _text(system, "system")) else []
    for i, message in enumerate(messages):
        blocks = (
            [ContentBlock(type="text", text=message.content)] if isinstance(message.content, str) else message.content
        )
        where = f"messages.{i}.content"
        texts, calls, reasoning = [], [], []
        for block in blocks:
            if block.type == "text":
                texts.append(block.text or "")
            elif block.type == "tool_result" and message.role == "user":
                result = _text(block.content, where)
                chat.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.tool_use_id,
                        "content": f"Error: {result}" if block.is_error else result,
                    }
                )
            elif block.type == "tool_use" and message.role == "assistant":
                calls.append(
                    {
                        "id": block.id,
                        "type": "function",
                        "function": {
                            "name": block.name or "",
                            "arguments": json.dumps(block.input or {}, ensure_ascii=False),
                        },
                    }
                )
            elif block.type == "thinking" and message.role == "assistant":
                reasoning.append(block.thinking or "")
            elif block.type != "redacted_thinking":  # another API's encrypted reasoning: nothing to read
                raise UsageError(
                    f"Content blocks of type {block.type!r} are not read here "
                    f"(text, tool_use, tool_result and thinking are).",
                    param=where,
                )
        if message.role == "user" and not texts and chat and chat[-1]["role"] == "tool":
            continue  # a turn of tool results only
        entry: dict[str, Any] = {
            "role": message.role,
            "content": "".join(texts) if message.role == "assistant" else "\n".join(texts),
        }
        if calls:
            entry["tool_calls"] = calls
        if reasoning:
            entry["reasoning_content"] = "".join(reasoning)
        chat.append(entry)
    return chat
