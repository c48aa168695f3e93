"""OpenAI's response shapes: chat.completion(.chunk) and text_completion objects from one turn per
choice (`n` > 1 runs n sequences in the batch), as JSON or as server-sent events."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from .. import __version__
from ..engine.events import (
    ContentDelta,
    Done,
    Event,
    ReasoningDelta,
    Result,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ..engine.template import THINK_CLOSE, THINK_OPEN
from ..errors import R1Error
from .errors import client_message, error_payload
from .turn import Turn

FINISH = {"stop": "stop", "length": "length", "cancelled": "stop"}
# A build tag in llama-server's form ("b<build>-<commit>"), which its clients read as the server's build
SYSTEM_FINGERPRINT = f"b{__version__}-r1local"


def finish_reason(done: Done, called: bool) -> str:
    return "tool_calls" if called and done.finish_reason == "stop" else FINISH[done.finish_reason]


def usage_json(usages: list[Usage], trimmed_messages: int = 0) -> dict:
    """One prompt, every choice's completion."""
    prompt, completion = usages[0].prompt_tokens, sum(u.completion_tokens for u in usages)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": usages[0].cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": sum(u.reasoning_tokens for u in usages)},
        **({"trimmed_messages": trimmed_messages} if trimmed_messages else {}),
    }


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def engine_error(done: Done | None) -> R1Error:
    return R1Error(f"Generation failed: {(done.error if done else None) or 'unknown engine error'}.")


def error_json(path: str, error: R1Error) -> dict:
    return error_payload(path, client_message(error), type_=error.error_type, code=error.code, param=error.param)


def logprob_entries(tokens: list[TokenLogprob]) -> list[dict]:
    """Each token with its log-probability, bytes and likeliest alternatives, as OpenAI's chat and Ollama send them."""

    def entry(text: str, logprob: float, raw: list[int]) -> dict:
        return {"token": text, "logprob": logprob, "bytes": raw}

    return [{**entry(t.token, t.logprob, t.bytes), "top_logprobs": [entry(*alt) for alt in t.top]} for t in tokens]


def chat_logprobs(tokens: list[TokenLogprob]) -> dict:
    return {"content": logprob_entries(tokens)}


def completion_logprobs(tokens: list[TokenLogprob], offset: int = 0) -> dict:
    """The legacy completions shape; text_offset counts characters from `offset`."""
    offsets = []
    for t in tokens:
        offsets.append(offset)
        offset += len(t.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [{text: logprob for text, logprob, _ in t.top} for t in tokens],
        "text_offset": offsets,
    }


class Reply:
    def __init__(
        self,
        turns: list[Turn],
        include_usage: bool,
        chat: bool,
        reasoning_inline: bool = False,
        echo: str = "",
        logprobs: bool = False,
    ) -> None:
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"  # one id for every chunk
        self.created = int(time.time())
        self.turns = turns
        self.include_usage = include_usage
        self.chat = chat
        self.reasoning_inline = reasoning_inline  # reasoning_format "none": <think>...</think> in content
        self.echo = echo  # completions' echo: the prompt comes back before the completion
        self.logprobs = logprobs

    def _object(self, choices: list[dict], *, chunk: bool, **extra) -> dict:
        kind = ("chat.completion" + (".chunk" if chunk else "")) if self.chat else "text_completion"
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.turns[0].model_name,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
            **extra,
        }

    def _choice(
        self,
        index: int,
        fields: dict,
        finish: str | None,
        key: str,
        tokens: list[TokenLogprob] | None = None,
        offset: int = 0,
    ) -> dict:
        """`fields` are a chat message's (or delta's) keys; completions carry only the text."""
        if self.chat:
            logprobs = chat_logprobs(tokens) if tokens is not None else None
            return {"index": index, key: fields, "logprobs": logprobs, "finish_reason": finish}
        logprobs = completion_logprobs(tokens, len(self.echo) + offset) if tokens is not None else None
        return {"index": index, "text": fields.get("content", ""), "logprobs": logprobs, "finish_reason": finish}

    def _chunk(
        self,
        index: int | None,
        delta: dict | None = None,
        finish: str | None = None,
        tokens: list[TokenLogprob] | None = None,
        offset: int = 0,
        **extra,
    ) -> str:
        choices = [] if index is None else [self._choice(index, delta or {}, finish, "delta", tokens, offset)]
        if self.include_usage:
            extra.setdefault("usage", None)  # OpenAI: null on every chunk but the last
        return sse(self._object(choices, chunk=True, **extra))

    def _usage(self, usages: list[Usage]) -> dict:
        return usage_json(usages, self.turns[0].trimmed_messages)

    async def whole(self, request: Request) -> JSONResponse:
        results = [await turn.result(request) for turn in self.turns]  # all run at once in the batch
        failed = next((r for r in results if r.done is None or r.done.finish_reason == "error"), None)
        if failed:
            error = engine_error(failed.done)
            return JSONResponse(error_json(request.url.path, error), status_code=error.http_status)
        dones = [r.done for r in results if r.done is not None]  # none failed: every one ended
        pairs = zip(results, dones, strict=True)
        choices = [self._whole_choice(i, result, done) for i, (result, done) in enumerate(pairs)]
        body = self._object(choices, chunk=False, usage=self._usage([done.usage for done in dones]))
        return JSONResponse(body, headers=self.turns[0].headers())

    def _whole_choice(self, index: int, result: Result, done: Done) -> dict:
        content, reasoning = self.echo + result.content, result.reasoning
        if self.reasoning_inline and reasoning:
            content, reasoning = f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{content}", ""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content if content or not result.tool_calls else None,
        }
        if reasoning:
            message["reasoning_content"] = reasoning
        if result.tool_calls:
            message["tool_calls"] = [call.as_dict() for call in result.tool_calls]
        return self._choice(
            index,
            message,
            finish_reason(done, bool(result.tool_calls)),
            "message",
            result.logprobs if self.logprobs else None,
        )

    async def chunks(self, request: Request) -> AsyncIterator[str]:
        for index in range(len(self.turns)):
            if self.chat:
                yield self._chunk(index, {"role": "assistant", "content": ""})
            elif self.echo:
                yield self._chunk(index, {"content": self.echo})
        called, reasoning, usages = set(), set(), []
        forming: set[tuple[int, int]] = set()  # (choice, call) whose deltas went out
        offsets: dict[int, int] = {}  # characters of each choice's tokens so far (completions' text_offset)
        async for index, event in self._events(request):
            if isinstance(event, ContentDelta):
                close = f"\n{THINK_CLOSE}\n\n" if index in reasoning and self.reasoning_inline else ""
                reasoning.discard(index)
                yield self._chunk(index, {"content": close + event.text})
            elif isinstance(event, ReasoningDelta):
                if self.reasoning_inline:
                    yield self._chunk(
                        index, {"content": ("" if index in reasoning else f"{THINK_OPEN}\n") + event.text}
                    )
                else:
                    yield self._chunk(index, {"reasoning_content": event.text})
                reasoning.add(index)
            elif isinstance(event, ToolCallDelta):  # a call as it forms: its name first, then its arguments
                called.add(index)
                if (index, event.index) in forming:
                    yield self._chunk(
                        index, {"tool_calls": [{"index": event.index, "function": {"arguments": event.arguments}}]}
                    )
                else:
                    forming.add((index, event.index))
                    yield self._chunk(
                        index,
                        {
                            "tool_calls": [
                                {
                                    "index": event.index,
                                    **ToolCall(event.index, event.id, event.name, event.arguments).as_dict(),
                                }
                            ]
                        },
                    )
            elif isinstance(event, ToolCall):
                called.add(index)
                if (index, event.index) not in forming:  # read whole, never streamed
                    yield self._chunk(index, {"tool_calls": [{"index": event.index, **event.as_dict()}]})
            elif isinstance(event, TokenLogprob):
                yield self._chunk(index, {}, tokens=[event], offset=offsets.get(index, 0))
                offsets[index] = offsets.get(index, 0) + len(event.token)
            elif event.finish_reason == "error":  # headers are gone: the error is the last event
                yield sse(error_json(request.url.path, engine_error(event)))
                break
            else:
                usages.append(event.usage)
                yield self._chunk(index, {}, finish_reason(event, index in called))
        if self.include_usage and len(usages) == len(self.turns):
            yield self._chunk(None, usage=self._usage(usages))
        yield sse("[DONE]")

    async def _events(self, request: Request) -> AsyncIterator[tuple[int, Event]]:
        """Every choice's events as they come, tagged with the choice's index."""
        if len(self.turns) == 1:
            async for event in self.turns[0].events(request):
                yield 0, event
            return
        queue: asyncio.Queue[tuple[int, Event | None]] = asyncio.Queue()

        async def pump(index: int, turn: Turn) -> None:
            try:
                async for event in turn.events(request):
                    await queue.put((index, event))
            finally:
                await queue.put((index, None))

        tasks = [asyncio.create_task(pump(i, turn)) for i, turn in enumerate(self.turns)]
        try:
            running = len(tasks)
            while running:
                index, item = await queue.get()
                if item is None:
                    running -= 1
                else:
                    yield index, item
        finally:
            for task in tasks:
                task.cancel()
