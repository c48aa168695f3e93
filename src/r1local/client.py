"""A resident `r1local serve`, as the CLI sees it once locate.py has found and trusted it: what it holds.

`run` and `chat` send their request to it when it can answer for the model (it stays loaded between
commands, as with Ollama), and read the answer as the engine's own events, so everything after the
request is the same as in-process. Requests use the OpenAI API, whose errors carry a code that maps
back to the exact error type (and so the exit code) the in-process path would give.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx

from . import errors
from .engine.events import Done, Event, FinishReason, Timings, Usage
from .engine.openai_stream import StreamDecoder
from .request import ChatRequest


def _error(response: httpx.Response) -> errors.R1Error:
    """The error class a server's JSON error body names by its code (OpenAI's shape; Ollama's has none)."""
    try:
        body = json.loads(response.read())["error"]
    except (ValueError, KeyError, TypeError):
        body = None
    if isinstance(body, dict):
        return errors.from_body(body.get("code"), body.get("message") or "The server failed.")
    return errors.R1Error(f"The r1local server answered {response.status_code}: {body or response.reason_phrase}.")


class ResidentServer:
    def __init__(self, url: str, api_key: str | None = None, timeout: float | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # no read timeout: a model may load, and R1 may reason, for minutes
        self.url = url
        self._http = httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(timeout, connect=5.0))

    def close(self) -> None:
        self._http.close()

    def has(self, model: str) -> bool:
        """Whether the server can load `model` without a download (it never downloads for `run`)."""
        response = self._http.post("/api/show", json={"model": model})
        if response.status_code in (401, 403):
            raise _error(response)
        return response.status_code == 200

    def running(self) -> list[dict]:
        """Ollama's /api/ps: the loaded models, their size in GPU memory, context and expiry."""
        return self._json("GET", "/api/ps")["models"]

    def show(self, model: str) -> dict:
        """Ollama's /api/show: the model's details, metadata, template and capabilities."""
        return self._json("POST", "/api/show", json={"model": model})

    def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """Normalised vectors, each input cut to the context as `r1local embed` does in-process."""
        body = self._json("POST", "/v1/embeddings", json={"model": model, "input": texts, "truncate": True})
        return [item["embedding"] for item in sorted(body["data"], key=lambda item: item["index"])]

    def unload(self, model: str) -> None:
        self._json("POST", "/api/generate", json={"model": model, "keep_alive": 0})

    def _json(self, method: str, path: str, **kwargs) -> dict:
        response = self._http.request(method, path, **kwargs)
        if response.status_code != 200:
            raise _error(response)
        return response.json()

    def chat(self, model: str, chat: ChatRequest) -> RemoteStream:
        return RemoteStream(self._http, {"model": model, **openai_body(chat)})


def openai_body(chat: ChatRequest) -> dict:
    """A chat request as the OpenAI body the server turns back into the same request, streamed
    (all but Ollama's num_ctx, which OpenAI's API lacks)."""
    body = {
        "messages": chat.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "think": chat.think,
        "reasoning_budget_tokens": chat.think_budget,
        "reasoning_effort": chat.effort,
        "max_tokens": chat.max_tokens,
        "stop": chat.stop or None,
        "n": chat.n if chat.n != 1 else None,
        "grammar": chat.grammar,
        "truncate": None if chat.trim else False,
        "continue_final_message": None if chat.continue_final else False,
        "logit_bias": chat.logit_bias,
        **chat.sampling.fields(),
    }
    if chat.logprobs is not None:
        body.update(logprobs=True, top_logprobs=chat.logprobs)
    if chat.tools:
        body.update(
            tools=[tool.model_dump(exclude_none=True) for tool in chat.tools],
            tool_choice=chat.tool_choice if isinstance(chat.tool_choice, str | None) else chat.tool_choice.model_dump(),
            parallel_tool_calls=chat.parallel_tool_calls,
        )
    if chat.response_format is not None:
        schema = chat.response_format.schema
        body["response_format"] = (
            {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
            if schema
            else {"type": "json_object"}
        )
    return {key: value for key, value in body.items() if value is not None}


class RemoteStream:
    """One streamed chat completion as engine events; `cancel` closes the connection, which the
    server takes as a cancel (the slot is freed at once)."""

    def __init__(self, http: httpx.Client, body: dict) -> None:
        self._started = time.monotonic()
        try:
            self._response = http.send(http.build_request("POST", "/v1/chat/completions", json=body), stream=True)
        except httpx.HTTPError as unanswered:
            raise errors.R1Error(
                f"The r1local server at {http.base_url} did not answer ({unanswered}).",
                "Check that it still runs: r1local ps",
            ) from None
        if self._response.status_code != 200:
            refusal = _error(self._response)
            self._response.close()
            raise refusal

    def cancel(self) -> None:
        self._response.close()

    def __iter__(self) -> Iterator[Event]:
        decoder = StreamDecoder(chat=True)
        first = last = None
        broke = None
        try:
            for line in self._response.iter_lines():
                for event in decoder.feed(line):
                    first = first or time.monotonic()
                    last = time.monotonic()
                    yield event
                if decoder.error or decoder.done:
                    break
            yield from decoder.flush()
        except httpx.HTTPError as error:
            broke = f"the connection to the server broke ({error})"
        finally:
            self._response.close()
        yield self._done(decoder, broke or decoder.error, first, last)

    def _done(self, decoder: StreamDecoder, error: str | None, first: float | None, last: float | None) -> Done:
        """Timings measured here, at the client: what a user of this command waits. A stream that
        ends without a finish reason was cut (Ctrl-C closed it)."""
        prompt, completion = decoder.prompt_tokens, decoder.completion_tokens or 0
        ttft = (first or time.monotonic()) - self._started
        decode_s = (last - first) if first and last and last > first else 0.0
        timings = Timings(
            queued_s=0.0,
            ttft_s=ttft,
            prompt_tokens_per_s=prompt / ttft if ttft else 0.0,
            generation_tokens_per_s=(completion - 1) / decode_s if decode_s else 0.0,
        )
        finish: FinishReason = (
            "error" if error else "length" if decoder.finish == "length" else "stop" if decoder.finish else "cancelled"
        )
        return Done(finish, Usage(prompt, completion, decoder.cached_tokens), timings, error)
