"""A request's event stream: the scheduler thread pushes, a thread or an asyncio task reads."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator

from .events import Done, Event, Progress, Result


class Stream:
    def __init__(self) -> None:
        self._events: deque[Event] = deque()
        self._cond = threading.Condition()
        self._cancelled = threading.Event()
        self._wakers: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.progress = Progress()  # written by the scheduler as the request goes
        self.trimmed_messages = 0  # oldest chat messages dropped to fit the context

    # -- producer side (scheduler thread) --
    def push(self, event: Event) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()
            wakers = list(self._wakers)
        for loop, flag in wakers:
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:  # the reader's loop has closed
                pass

    # -- consumer side --
    def cancel(self) -> None:
        """Stop generating; the slot is freed at the scheduler's next step."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def __iter__(self) -> Iterator[Event]:
        while True:
            with self._cond:
                while not self._events:
                    self._cond.wait()
                event = self._events.popleft()
            yield event
            if isinstance(event, Done):
                return

    async def __aiter__(self) -> AsyncIterator[Event]:
        flag = asyncio.Event()
        waker = (asyncio.get_running_loop(), flag)
        with self._cond:
            self._wakers.append(waker)
        try:
            while True:
                with self._cond:
                    event = self._events.popleft() if self._events else None
                    if event is None:
                        flag.clear()
                if event is None:
                    await flag.wait()
                    continue
                yield event
                if isinstance(event, Done):
                    return
        finally:
            with self._cond:
                self._wakers.remove(waker)

    def result(self) -> Result:
        """Block until done and gather every event."""
        result = Result()
        for event in self:
            result.add(event)
        return result
