"""One generation request in flight: its hold on a model and its engine stream. However the
response ends (finished, client gone, error) the stream is cancelled if still running, so its
slot frees at the scheduler's next step, and the model lease is released exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..engine.events import Done, Event, Result
from ..engine.model import Model
from ..engine.stream import Stream
from .manager import KEEP, Lease
from .state import ServerState


class Turn:
    def __init__(self, state: ServerState, lease: Lease, stream: Stream, api: str,
                 keep_alive_s: float | None | object, load_s: float, started: float) -> None:
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

    async def events(self, request: Request) -> AsyncIterator[Event]:
        """The engine's events, read without blocking the event loop; a disconnect cancels."""
        watcher = asyncio.create_task(_cancel_on_disconnect(request, self.stream))
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


async def start_turn(state: ServerState, model: str, submit: Callable[[Model], Stream], api: str,
                     keep_alive_s: float | None | object = KEEP) -> Turn:
    """Load (or find) the model and submit the request. Errors here (unknown model, prompt too
    long, queue full, an upstream's refusal) surface before any response byte, as proper HTTP errors."""
    started = time.monotonic()
    lease = await state.manager.acquire(model)
    load_s = time.monotonic() - started
    try:  # off the event loop: rendering and tokenising a long chat, or an upstream's answer, take time
        stream = await asyncio.to_thread(submit, lease.model)
    except BaseException:
        lease.release(keep_alive_s)
        raise
    return Turn(state, lease, stream, api, keep_alive_s, load_s, started)


async def _cancel_on_disconnect(request: Request, stream: Stream) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
    stream.cancel()


class TurnResponse(StreamingResponse):
    """A streamed response that closes its turn even when it never got to start streaming."""

    def __init__(self, content: AsyncIterator[str], turn: Turn, media_type: str) -> None:
        super().__init__(content, media_type=media_type,
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.turn = turn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.turn.close()
