"""/api/pull: a download through the store, its progress relayed as Ollama's status objects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .. import catalog
from .. import resolve as names
from ..errors import R1Error
from ..store import Target


def pull_target(name: str) -> Target:
    """What a pull of `name` fetches; an unknown name fails here, before any response byte."""
    target, _ = names.choose(catalog.parse(name, allow_paths=False))
    return target


async def pull_events(target: Target) -> AsyncIterator[dict]:
    """{"status": "pulling manifest"}, then per file {"status", "digest", "total", "completed"},
    then {"status": "success"}. A failed pull raises its R1Error after the progress so far."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict | R1Error | None] = asyncio.Queue()

    def put(event: dict | R1Error | None) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    class Progress:
        """The tqdm-like class the store drives, one instance per file."""

        def __init__(self, *, total: int | None = None, initial: int = 0, desc: str | None = None, **_) -> None:
            self.file, self.total, self.completed = desc or target.label, total or 0, initial
            self._report()

        def update(self, n: int = 1) -> None:
            self.completed += n
            self._report()

        def _report(self) -> None:
            put({"status": f"pulling {self.file}", "digest": self.file,
                 "total": self.total, "completed": self.completed})

        def __enter__(self) -> Progress:
            return self

        def __exit__(self, *exc) -> None:
            pass

    def work() -> None:
        from .. import download  # the Hub client only when something is downloaded

        try:
            download.pull(target, progress=Progress)
        except R1Error as error:
            put(error)
        finally:
            put(None)

    yield {"status": "pulling manifest"}
    worker = asyncio.create_task(asyncio.to_thread(work))
    while (event := await queue.get()) is not None:
        if isinstance(event, R1Error):
            await worker
            raise event
        yield event
    await worker
    yield {"status": "success"}
