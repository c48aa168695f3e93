"""Another runtime's OpenAI-compatible server, fronted as an engine.

AMD's NPU is driven by Lemonade (FastFlowLM), the Snapdragon NPU by Foundry Local; neither is a
library r1local can load, and both serve the OpenAI API on localhost. `r1local serve --upstream
NAME=URL` lists such a server's models as NAME/MODEL and forwards requests to it, streaming; its
reasoning arrives in whichever field it uses (`reasoning_content`, `reasoning`, or a `<think>`
block inside the content) and leaves as r1local's events, so OpenAI and Ollama clients see it as
they see any local model. An upstream that stops answering is marked down and listed empty; its
errors pass through with their status.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import httpx

from ..errors import UpstreamDown, UpstreamError, UsageError
from .base import Engine
from .capabilities import Capabilities
from .events import Done, FinishReason, Timings, Usage
from .openai_stream import StreamDecoder, error_text
from .params import SamplingParams
from .stream import Stream
from .template import ChatTemplate

log = logging.getLogger("r1local.upstream")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
LIST_TIMEOUT_S = 2.0  # listing models must not hold /v1/models up for long
CONNECT_TIMEOUT_S = 5.0
FINISH: dict[str | None, FinishReason] = {"stop": "stop", "length": "length", None: "stop"}
# chat and completions are forwarded whole: nothing here constrains or reads tokens, and the context
# is the upstream's own, which it does not say
UPSTREAM_CAPABILITIES = Capabilities(
    thinking=True,
    tools=False,
    grammar=False,
    embeddings=False,
    logprobs=False,
    think_budget=False,
    logit_bias=False,
    context_length=None,
)


def parse_spec(spec: str) -> tuple[str, str]:
    """ "foundry=http://127.0.0.1:5273/v1" -> ("foundry", "http://127.0.0.1:5273/v1")."""
    name, sep, url = spec.partition("=")
    if not sep or not NAME_RE.match(name) or not re.match(r"^https?://[^\s/]+", url):
        raise UsageError(f"Not an upstream: {spec!r}.", "Write NAME=URL, e.g. foundry=http://127.0.0.1:5273/v1.")
    return name, url.rstrip("/")


class Upstream:
    """One upstream server: its model list, and whether it answered lately."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.down_since: float | None = None
        self.client = httpx.Client(timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_S))

    def models(self) -> list[str]:
        """The upstream's model ids; [] (and marked down) when it does not answer."""
        try:
            reply = self.client.get(f"{self.url}/models", timeout=LIST_TIMEOUT_S)
            reply.raise_for_status()
            ids = [m["id"] for m in reply.json().get("data", []) if isinstance(m.get("id"), str)]
        except (httpx.HTTPError, ValueError, KeyError, AttributeError):
            self.mark_down()
            return []
        self.down_since = None
        return ids

    def mark_down(self) -> None:
        self.down_since = self.down_since or time.time()

    def close(self) -> None:
        self.client.close()


class UpstreamModel(Engine):
    """A model of an upstream server, behind the same seam as a local one."""

    engine = "upstream"

    def __init__(self, upstream: Upstream, model_id: str) -> None:
        self.upstream = upstream
        self.model_id = model_id
        self.name = f"{upstream.name}/{model_id}"
        self.path = None  # type: ignore[assignment]  # nothing on this disk
        self.template = ChatTemplate(None)  # unused: the upstream renders its own prompts
        self.device = upstream.url
        self.n_ctx = None  # type: ignore[assignment]  # unknown here: the upstream enforces its own
        self.n_parallel = 1
        self.counters = dict(
            requests_total=0, prompt_tokens_total=0, completion_tokens_total=0, cached_tokens_total=0, rejected_total=0
        )

    @property
    def is_r1(self) -> bool:
        """Served as a reasoning model: its reasoning is kept apart, and think=False asks it for none."""
        return True

    @property
    def capabilities(self) -> Capabilities:
        return UPSTREAM_CAPABILITIES

    def chat(
        self,
        messages: list[dict],
        *,
        think: bool | None = None,
        params: SamplingParams | None = None,
        tool_list: list[dict] | None = None,
        calls: bool = True,
        continue_final: bool = True,
        trim: bool = True,
        template: str | None = None,
    ) -> Stream:
        """The upstream renders (with its own template, so a preset's is not used), trims and
        continues its own prompts; tools never reach here (the placeholder template has none, so
        they are refused before)."""
        body: dict[str, Any] = {"messages": messages}
        if think is False:
            body["reasoning_effort"] = "none"  # servers that know it answer without reasoning
        return self._forward("chat/completions", body, params or SamplingParams())

    def complete(self, prompt: str, *, params: SamplingParams | None = None, suffix: str | None = None) -> Stream:
        body = {"prompt": prompt, **({"suffix": suffix} if suffix is not None else {})}
        return self._forward("completions", body, params or SamplingParams())

    def _forward(self, route: str, body: dict, params: SamplingParams) -> Stream:
        """Send the request and wait for the upstream's status (the caller runs this off the
        event loop); the body streams in on a thread."""
        body = {
            **body,
            "model": self.model_id,
            "stream": True,
            "stream_options": {"include_usage": True},
            **_sampling(params),
        }
        request = self.upstream.client.build_request("POST", f"{self.upstream.url}/{route}", json=body)
        submitted = time.perf_counter()
        try:
            response = self.upstream.client.send(request, stream=True)
        except httpx.HTTPError as error:
            self.upstream.mark_down()
            raise UpstreamDown(
                f"The upstream {self.upstream.name} ({self.upstream.url}) is not answering: {error}.",
                "Start it again; r1local keeps serving its own models meanwhile.",
            ) from None
        if response.status_code >= 400:
            text = response.read().decode("utf-8", "replace")
            response.close()
            raise UpstreamError(f"{self.upstream.name}: {error_text(text)}", response.status_code)
        self.upstream.down_since = None
        self.counters["requests_total"] += 1
        stream = Stream()
        threading.Thread(
            target=self._relay,
            args=(response, stream, submitted, route == "chat/completions"),
            name="r1local-upstream",
            daemon=True,
        ).start()
        return stream

    def _relay(self, response: httpx.Response, stream: Stream, submitted: float, chat: bool) -> None:
        """Read the upstream's chunks into `stream`; whatever they hold, the stream ends with Done."""
        decoder = StreamDecoder(chat=chat)
        first, pieces, cancelled, failure = 0.0, 0, False, None
        try:
            for line in response.iter_lines():
                if stream.cancelled:
                    cancelled = True
                    break
                for event in decoder.feed(line):
                    first = first or time.perf_counter()
                    pieces += 1
                    stream.push(event)
                if decoder.error or decoder.done:
                    break
            for event in decoder.flush():
                stream.push(event)
        except httpx.HTTPError as error:
            self.upstream.mark_down()
            failure = f"the upstream {self.upstream.name} stopped answering ({type(error).__name__})"
        except Exception:  # a bug here must still end the stream, or its client waits forever
            log.exception("relaying %s", self.name)
            failure = f"reading the upstream {self.upstream.name} failed"
        finally:
            response.close()
            reason = failure or (decoder.error and f"{self.upstream.name}: {decoder.error}")
            self._finish(stream, decoder, reason, cancelled, first, pieces, submitted)

    def _finish(
        self,
        stream: Stream,
        decoder: StreamDecoder,
        error: str | None,
        cancelled: bool,
        first: float,
        pieces: int,
        submitted: float,
    ) -> None:
        prompt = decoder.prompt_tokens
        completion = decoder.completion_tokens if decoder.completion_tokens is not None else pieces
        self.counters["prompt_tokens_total"] += prompt
        self.counters["completion_tokens_total"] += completion
        now = time.perf_counter()
        rate = (completion - 1) / (now - first) if first and now > first else 0.0
        timings = Timings(0.0, (first - submitted) if first else 0.0, 0.0, rate)
        reason: FinishReason = "error" if error else "cancelled" if cancelled else FINISH.get(decoder.finish, "stop")
        stream.push(Done(reason, Usage(prompt, completion), timings, error))

    def prompt_tokens(self, text: str) -> list[int]:
        raise UsageError("An upstream model has no local tokenizer.")

    def _submit(self, tokens, params, *, split_reasoning, in_reasoning, parse_tools=False) -> Stream:
        raise UsageError(
            f"{self.name} is served by another program, which takes text, not token ids.",
            "Send a chat or a completion.",
            param="model",
        )

    def stats(self) -> dict:
        return dict(
            busy_slots=0, slots=self.n_parallel, queued=0, prefix_cache_bytes=0, prefix_cache_hits=0, **self.counters
        )

    def describe(self) -> dict:
        return {
            "engine": self.engine,
            "device": self.upstream.url,
            "upstream": self.upstream.name,
            "context_length": self.n_ctx,
            "parallel": self.n_parallel,
        }

    def close(self) -> None:
        pass


def _sampling(params: SamplingParams) -> dict:
    """The OpenAI fields of a request's sampling settings (R1's defaults included)."""
    fields: dict[str, Any] = {"temperature": params.temperature, "top_p": params.top_p}
    if params.max_tokens:
        fields["max_tokens"] = params.max_tokens
    if params.stop:
        fields["stop"] = params.stop
    if params.seed is not None:
        fields["seed"] = params.seed
    if params.presence_penalty:
        fields["presence_penalty"] = params.presence_penalty
    if params.frequency_penalty:
        fields["frequency_penalty"] = params.frequency_penalty
    return fields
