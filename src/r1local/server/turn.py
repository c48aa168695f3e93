"""One generation request in flight: its hold on a model and its engine stream. However the
response ends (finished, client gone, error) the stream is cancelled if still running, so its
slot frees at the scheduler's next step, and the model lease is released exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import Protocol

from fastapi import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..engine.base import Engine
from ..engine.events import Done, Event, Result
from ..engine.stream import Stream
from ..errors import Cancelled
from ..request import ChatRequest, submit
from ..request.prepare import check
from .manager import KEEP, Lease
from .resolve import declared_for
from .state import ServerState, get_state


class Cancellable(Protocol):
    def cancel(self) -> None: ...


TRIMMED_HEADER = "X-Trimmed-Messages"


class Turn:
    def __init__(
        self,
        state: ServerState,
        lease: Lease,
        stream: Stream,
        api: str,
        keep_alive_s: float | None | object,
        load_s: float,
        started: float,
    ) -> None:
        self.state = state
        self.lease = lease
        self.stream = stream
        self.api = api
        self.keep_alive_s = keep_alive_s
        self.load_s = load_s
        self.started = started
        self.done: Done | None = None
        self._closed = False

    @property
    def model_name(self) -> str:
        return self.lease.entry.name

    @property
    def trimmed_messages(self) -> int:
        return self.stream.trimmed_messages

    def headers(self) -> dict[str, str]:
        """Says when the oldest messages of a long chat were dropped to fit the context."""
        return {TRIMMED_HEADER: str(self.trimmed_messages)} if self.trimmed_messages else {}

    async def events(self, request: Request) -> AsyncIterator[Event]:
        """The engine's events, read without blocking the event loop; a disconnect cancels."""
        watcher = asyncio.create_task(cancel_on_disconnect(request, self.stream))
        try:
            async for event in self.stream:
                if isinstance(event, Done):
                    self.done = event
                    self.state.metrics.finished(self.model_name, self.api, event)
                yield event
        finally:
            watcher.cancel()
            self.close()

    async def result(self, request: Request) -> Result:
        result = Result()
        async for event in self.events(request):
            result.add(event)
        return result

    def close(self) -> None:
        """Idempotent: both the event loop's `finally` and the response's end call it."""
        if self._closed:
            return
        self._closed = True
        if self.done is None:  # the client left (or the response failed) before the end
            self.stream.cancel()
            self.state.metrics.cancelled(self.model_name, self.api)
        self.lease.release(self.keep_alive_s)


async def acquire(request: Request, model: str) -> Lease:
    """The model's lease, loading it if need be. A client that leaves during the load stops
    waiting, and a load nobody waits for any more stops."""
    acquiring = asyncio.ensure_future(get_state(request).manager.acquire(model))
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({acquiring, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not acquiring.done():
        acquiring.cancel()
        raise Cancelled("The client left while the model loaded.")
    return acquiring.result()


async def start_turn(
    request: Request,
    model: str,
    submit: Callable[[Engine], Stream],
    api: str,
    keep_alive_s: float | None | object = KEEP,
) -> Turn:
    """Load (or find) the model and submit the request. Errors here (unknown model, prompt too
    long, queue full, an upstream's refusal) surface before any response byte, as proper HTTP errors."""
    state = get_state(request)
    started = time.monotonic()
    lease = await acquire(request, model)
    load_s = time.monotonic() - started
    # Rendering and tokenising a long chat, building a sampler (a grammar, penalty buffers) or an
    # upstream's answer take time: the model's own threads do it, never the event loop.
    submitted = lease.work(submit, lease.model)
    try:
        stream = await asyncio.shield(submitted)
    except asyncio.CancelledError:  # the request was abandoned while its work went on
        submitted.add_done_callback(lambda _: _abandon(submitted, lease, keep_alive_s))
        raise
    except BaseException:
        lease.release(keep_alive_s)
        raise
    return Turn(state, lease, stream, api, keep_alive_s, load_s, started)


def _abandon(submitted: asyncio.Future, lease: Lease, keep_alive_s: float | None | object) -> None:
    if not submitted.cancelled() and submitted.exception() is None:
        submitted.result().cancel()
    lease.release(keep_alive_s)


async def check_declared(request: Request, model: str, chat: ChatRequest) -> None:
    """Refuse, before the model loads, a chat request that asks for what its engine declares it
    lacks (prepare() checks again with the loaded model)."""
    found = await asyncio.to_thread(declared_for, get_state(request).manager, model)
    if found is not None:
        check(chat, found[0], model, found[1])


async def start_chat(request: Request, model: str, chat: ChatRequest, api: str) -> list[Turn]:
    """A chat request's turns, one per choice."""
    await check_declared(request, model, chat)
    return await start_turns(request, model, [partial(submit, chat, choice=i) for i in range(chat.n)], api)


async def start_turns(
    request: Request, model: str, submits: Sequence[Callable[[Engine], Stream]], api: str
) -> list[Turn]:
    """One turn per choice of an `n` > 1 request (or prompt of a list); if one cannot start, none is
    left running. The choices start in one engine step, so greedy ones give the same text."""
    if len(submits) == 1:
        return [await start_turn(request, model, submits[0], api=api)]
    turns: list[Turn] = []
    holding = await acquire(request, model)  # the engine whose admission waits for the last choice
    try:
        with holding.model.admission_held():
            for submit in submits:
                turns.append(await start_turn(request, model, submit, api=api))
    except BaseException:
        for turn in turns:
            turn.close()
        raise
    finally:
        holding.release()
    return turns


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def cancel_on_disconnect(request: Request, job: Cancellable) -> None:
    """Cancel `job` when the client goes away (run as a task beside the response)."""
    await _disconnected(request)
    job.cancel()


class ClosingResponse(StreamingResponse):
    """A streamed response that runs `close` when it ends, even when it never got to start streaming."""

    def __init__(
        self,
        content: AsyncIterator[str],
        close: Callable[[], None],
        media_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            content,
            media_type=media_type,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
        )
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._close()


class TurnResponse(ClosingResponse):
    """Closes its turns (one per choice of `n`) when the response ends."""

    def __init__(self, content: AsyncIterator[str], turns: Turn | list[Turn], media_type: str) -> None:
        self.turns = turns if isinstance(turns, list) else [turns]
        super().__init__(content, self._close_turns, media_type, self.turns[0].headers())

    def _close_turns(self) -> None:
        for turn in self.turns:
            turn.close()
