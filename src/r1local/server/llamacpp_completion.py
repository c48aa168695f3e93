"""llama-server's /completion and /infill, answered as llama-server answers: the text, the token ids
(`return_tokens`), each token's probabilities (`n_probs`, after sampling with `post_sampling_probs`),
the settings used, `truncated` only when the context filled, and per-token timings, or only the
`response_fields` asked for; whole or as server-sent events. A prompt is text, token ids, or both
mixed."""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import Field

from ..engine.base import Engine
from ..engine.events import ContentDelta, Done, Progress, ReasoningDelta, Timings, TokenLogprob
from ..engine.params import SamplingParams
from ..engine.stream import Stream
from ..errors import UsageError
from ..request import sampling_params
from ..request.grammar import MAX_GRAMMAR_CHARS, json_grammar
from ..request.logit_bias import LogitBias, biased
from ..request.prepare import check_generation
from .llama_prompts import Prompt, split
from .resolve import lenient_name
from .schema_base import MAX_MESSAGES, MAX_STOPS, SEED, STOP, TOP_K, Strict
from .state import get_state
from .tolerance import check_fields
from .turn import Turn, TurnResponse, start_turns

STOP_TYPES = {"stop": "eos", "length": "limit", "cancelled": "none", "error": "none"}
MAX_PROMPT_ITEMS = 1 << 20  # token ids (or text pieces) of one prompt
MAX_PROMPTS = 16  # prompts in one request, each answered (as choices are)
MAX_PROBS = 20  # alternatives per token; a larger n_probs gets this many
MAX_FIELDS = 64  # response_fields paths


class NamedModel(Strict):
    model: str | None = None  # llama-server ignores it; here it picks among the models, else the default


class CompletionRequest(NamedModel):
    prompt: str | dict[str, Any] | list[Any] = Field(max_length=MAX_PROMPT_ITEMS)
    n_predict: int | None = Field(None, ge=-1)
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    top_k: TOP_K | None = None
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, gt=0.0, le=10.0)
    repeat_last_n: int | None = Field(None, ge=0, le=2**31 - 1)  # clamped to the context
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    seed: SEED | None = None
    stop: list[STOP] | None = Field(None, max_length=MAX_STOPS)
    stream: bool = False
    grammar: str | None = Field(None, max_length=MAX_GRAMMAR_CHARS)
    json_schema: dict[str, Any] | None = None
    ignore_eos: bool | None = None
    cache_prompt: bool | None = None  # prompt reuse is always on
    logit_bias: LogitBias | None = None
    n_probs: int = Field(0, ge=0)
    post_sampling_probs: bool = False  # n_probs as probabilities of the distribution each token was drawn from
    return_tokens: bool = False
    response_fields: list[str] = Field(default_factory=list, max_length=MAX_FIELDS)  # "a/b" paths kept

    def prompts(self) -> list[Prompt]:
        """Each prompt of the request: text, or token ids and text pieces mixed; several get one answer each."""
        return split(self.prompt, param="prompt", limit=MAX_PROMPTS)

    def sampling(self, model: Engine) -> SamplingParams:
        grammar = self.grammar or (
            json_grammar(self.json_schema, "json_schema") if self.json_schema is not None else None
        )
        wants_ids = self.n_probs > 0 or self.return_tokens
        params = sampling_params(
            model.capabilities.context_length,
            max_tokens=self.n_predict,
            stop=list(self.stop or []),
            grammar=grammar,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            repeat_penalty=self.repeat_penalty,
            repeat_last_n=self.repeat_last_n,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            seed=self.seed,
            ignore_eos=self.ignore_eos,
            logprobs=min(self.n_probs, MAX_PROBS) if wants_ids else None,
            post_sampling=self.post_sampling_probs,
        )
        params = biased(params, self.logit_bias, model)
        check_generation(params, model)
        return params


class ExtraFile(Strict):
    filename: str = Field("", max_length=4096)
    text: str


class InfillRequest(CompletionRequest):
    """llama-server's /infill: the code before and after the cursor, other files as context, and
    `prompt`, the start of the answer."""

    input_prefix: str = ""
    input_suffix: str = ""
    input_extra: list[ExtraFile] = Field(default_factory=list, max_length=MAX_MESSAGES)
    prompt: str = ""


def prompt_tokens(items: list[int | str], model: Engine) -> list[int]:
    """A mixed prompt's ids, as llama-server tokenises one: text pieces with special tokens read,
    the beginning-of-text token only before a first piece of text."""
    vocab = model.gguf_vocab()
    tokens: list[int] = []
    for i, item in enumerate(items):
        tokens += [item] if isinstance(item, int) else vocab.tokenize(item, add_special=i == 0, parse_special=True)
    return tokens


def complete(prompt: Prompt, model: Engine, params: SamplingParams) -> Stream:
    if isinstance(prompt, str):
        return model.complete(prompt, params=params)
    return model.complete_tokens(prompt_tokens(prompt, model), params=params)


async def answer(
    request: Request,
    body: CompletionRequest,
    start: Callable[[Prompt, Engine, SamplingParams], Stream],
):
    """Generate for /completion or /infill: `start(prompt, model, params)` makes a prompt's stream;
    the answer is one JSON object (a list of them for several prompts), or server-sent events
    with `stream`."""
    state = get_state(request)
    check_fields(body, state.settings)
    prompts = body.prompts()
    if body.stream and len(prompts) > 1:
        raise UsageError(
            "Stream one prompt per request (several are answered together without stream).", param="prompt"
        )
    used: list[SamplingParams] = []

    def submit(model: Engine, prompt: Prompt) -> Stream:  # in a worker thread: the sampler and the prompt take time
        used.append(body.sampling(model))
        return start(prompt, model, used[-1])

    submits = [partial(submit, prompt=prompt) for prompt in prompts]
    turns = await start_turns(request, lenient_name(state.manager, body.model), submits, api="llama.cpp")
    replies = [
        CompletionReply(turn, body, params, index) for index, (turn, params) in enumerate(zip(turns, used, strict=True))
    ]
    if body.stream:
        return TurnResponse(replies[0].chunks(request), turns, "text/event-stream")
    try:
        answers = [await reply.whole(request) for reply in replies]
    finally:
        for turn in turns:
            turn.close()
    failed = [found for found in answers if isinstance(found, JSONResponse)]
    return failed[0] if failed else answers[0] if len(answers) == 1 else answers


def probabilities(tokens: list[TokenLogprob], post_sampling: bool) -> list[dict]:
    """llama-server's completion_probabilities: log-probabilities, or with post_sampling_probs the
    probabilities after sampling (`prob`, `top_probs`)."""

    def entry(token_id: int, text: str, logprob: float, raw: list[int]) -> dict:
        chance = {"prob": math.exp(logprob)} if post_sampling else {"logprob": logprob}
        return {"id": token_id, "token": text, "bytes": raw, **chance}

    alternatives = "top_probs" if post_sampling else "top_logprobs"
    return [
        {
            **entry(t.id, t.token, t.logprob, t.bytes),
            alternatives: [entry(i, *alt) for i, alt in zip(t.top_ids, t.top, strict=True)],
        }
        for t in tokens
    ]


def picked(fields: list[str], answer: dict) -> dict:
    """llama-server's response_fields: only the values at these "a/b" paths, keyed by path."""
    found = {}
    for path in fields:
        value: object = answer
        for key in path.split("/"):
            value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
        if value is not _MISSING:
            found[path] = value
    return found


_MISSING = object()


class CompletionReply:
    def __init__(self, turn: Turn, body: CompletionRequest, params: SamplingParams, index: int = 0) -> None:
        self.turn = turn
        self.body = body
        self.params = params
        self.index = index  # the prompt's place among the request's prompts
        self.has_new_line = False

    def _extra(self, tokens: list[TokenLogprob]) -> dict:
        extra: dict = {"tokens": [t.id for t in tokens] if self.body.return_tokens else []}
        if self.body.n_probs and tokens:
            extra["completion_probabilities"] = probabilities(tokens, self.body.post_sampling_probs)
        return extra

    async def whole(self, request: Request):
        content, tokens, done = "", [], None
        async for event in self.turn.events(request):
            if isinstance(event, (ContentDelta, ReasoningDelta)):
                content += event.text
            elif isinstance(event, TokenLogprob):
                tokens.append(event)
            elif isinstance(event, Done):
                done = event
        if done is None or done.finish_reason == "error":
            message = f"Generation failed: {(done.error if done else None) or 'no result'}."
            return JSONResponse({"error": {"code": 500, "message": message, "type": "server_error"}}, 500)
        self.has_new_line = "\n" in content
        answer = {**self._final(done, content), **self._extra(tokens)}
        return picked(self.body.response_fields, answer) if self.body.response_fields else answer

    async def chunks(self, request: Request) -> AsyncIterator[str]:
        pending: list[TokenLogprob] = []  # a token's ids and probabilities go out with its text
        async for event in self.turn.events(request):
            if isinstance(event, TokenLogprob):
                pending.append(event)
                continue
            if isinstance(event, (ContentDelta, ReasoningDelta)):
                self.has_new_line |= "\n" in event.text
                body = {"index": 0, "content": event.text, "stop": False, **self._extra(pending)}
                pending = []
            elif not isinstance(event, Done):
                continue  # a completion has no tool calls
            elif event.finish_reason == "error":
                body = {"error": {"code": 500, "message": f"Generation failed: {event.error}.", "type": "server_error"}}
            else:
                if pending:  # tokens whose text was held back (a possible stop string) and then dropped
                    yield _sse({"index": 0, "content": "", "stop": False, **self._extra(pending)})
                body = self._final(event, "")
                body = picked(self.body.response_fields, body) if self.body.response_fields else body
            yield _sse(body)

    def _final(self, done: Done, content: str) -> dict:
        usage, t = done.usage, done.timings
        context = self.params.context(self.turn.lease.model.n_ctx)
        prompt_n, predicted_n = usage.prompt_tokens - usage.cached_tokens, usage.completion_tokens
        return {
            "index": self.index,
            "content": content,
            "tokens": [],
            "stop": True,
            "model": self.turn.model_name,
            "tokens_predicted": predicted_n,
            "tokens_evaluated": usage.prompt_tokens,
            "tokens_cached": usage.cached_tokens,
            "generation_settings": self._settings(),
            "has_new_line": self.has_new_line,
            # llama-server's meaning: the context filled up, not the n_predict the client asked for
            "truncated": done.finish_reason == "length" and usage.prompt_tokens + predicted_n >= context,
            "stop_type": STOP_TYPES[done.finish_reason],
            "stopping_word": "",
            "timings": llama_timings(t, usage.cached_tokens, prompt_n, predicted_n),
        }

    def _settings(self) -> dict:
        """What the generation ran with, in llama-server's names."""
        p, n_predict = self.params, self.params.max_tokens or -1
        return {
            "n_predict": n_predict,
            "max_tokens": n_predict,
            "seed": p.seed if p.seed is not None else -1,
            "temperature": p.temperature,
            "top_k": p.top_k,
            "top_p": p.top_p,
            "min_p": p.min_p,
            "repeat_last_n": p.repeat_last_n,
            "repeat_penalty": p.repeat_penalty,
            "presence_penalty": p.presence_penalty,
            "frequency_penalty": p.frequency_penalty,
            "ignore_eos": p.ignore_eos,
            "stream": self.body.stream,
            "n_probs": self.body.n_probs,
            "stop": p.stop,
            "grammar": p.grammar or "",
            "logit_bias": [[token, bias if bias != float("-inf") else False] for token, bias in p.logit_bias],
        }


def llama_timings(t: Timings, cache_n: int, prompt_n: int, predicted_n: int) -> dict:
    """llama-server's `timings` object: the prompt's and the generation's tokens, time and rates."""
    return {
        "cache_n": cache_n,
        "prompt_n": prompt_n,
        "prompt_ms": t.prompt_s * 1e3,
        "prompt_per_token_ms": t.prompt_s * 1e3 / prompt_n if prompt_n else 0.0,
        "prompt_per_second": t.prompt_tokens_per_s,
        "predicted_n": predicted_n,
        "predicted_ms": t.generation_s * 1e3,
        "predicted_per_token_ms": t.generation_s * 1e3 / predicted_n if predicted_n else 0.0,
        "predicted_per_second": t.generation_tokens_per_s,
    }


def progress_timings(progress: Progress) -> dict:
    """llama-server's `timings` while a request generates (its timings_per_token)."""
    timings = progress.timings(time.perf_counter())
    prompt_n = progress.prompt_tokens - progress.cached_tokens
    return llama_timings(timings, progress.cached_tokens, prompt_n, progress.generated)


def _sse(body: dict) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
