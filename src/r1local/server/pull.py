"""/api/pull: a download through the store, its progress relayed as Ollama's status objects.

Downloads run on their own few threads, never on those that loads and requests use, at most
MAX_PULLS at once (more get 503), and each stops when the client that asked for it is gone: the
partial file stays, and the next pull resumes it."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor

from .. import resolve, store
from ..errors import Cancelled, Overloaded, R1Error, storage_error
from ..names import ModelAddress
from ..store import Target

log = logging.getLogger("r1local.server")
MAX_PULLS = 2


def pull_target(name: str) -> Target:
    """What a pull of `name` fetches; an unknown name fails here, before any response byte."""
    target, _ = resolve.choose(ModelAddress.parse(name))
    return target


class Pull:
    """One download on a pull thread. events() yields {"status": "pulling manifest"}, then per file
    {"status", "digest", "total", "completed"}, then {"status": "success"}; a failed pull raises
    its R1Error after the progress so far."""

    def __init__(self, target: Target, loop: asyncio.AbstractEventLoop) -> None:
        self.target = target
        self._loop = loop
        self._queue: asyncio.Queue[dict | R1Error | None] = asyncio.Queue()
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop at the next chunk (or while waiting for another download of the same file)."""
        self._cancelled.set()

    async def events(self) -> AsyncIterator[dict]:
        yield {"status": "pulling manifest"}
        while (event := await self._queue.get()) is not None:
            if isinstance(event, R1Error):
                raise event
            yield event
        yield {"status": "success"}

    # -- on the pull thread --
    def run(self) -> None:
        from .. import download  # the Hub client only when something is downloaded

        try:
            self._check()
            if store.discard_damaged(self.target):
                self._put({"status": "the copy in the cache is damaged: downloading it again"})
            download.pull(self.target, progress=self._progress_class(), on_wait=self._waiting)
        except R1Error as error:
            self._put(error)
        except OSError as error:  # a read-only or full cache
            self._put(storage_error(error))
        except Exception as error:  # the stream must end with an error line, never just stop
            log.exception("pull of %s failed", self.target.label)
            self._put(R1Error(f"The pull failed: {type(error).__name__}."))
        finally:
            self._put(None)

    def _put(self, event: dict | R1Error | None) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the server's loop has closed
            pass

    def _check(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled(f"The pull of {self.target.label} was cancelled: its client left.")

    def _waiting(self, file: str, first: bool) -> None:
        """Called every second while another pull (here or in another process) holds `file`."""
        self._check()
        if first:
            self._put({"status": f"waiting for another download of {file} to finish"})

    def _progress_class(self) -> type:
        pull = self

        class Progress:
            """The tqdm-like class the store drives, one instance per file; it also stops a
            cancelled download at its next chunk."""

            def __init__(self, *, total: int | None = None, initial: int = 0, desc: str | None = None, **_) -> None:
                self.file, self.total, self.completed = desc or pull.target.label, total or 0, initial
                self._report()

            def update(self, n: int = 1) -> None:
                pull._check()
                self.completed += n
                self._report()

            def _report(self) -> None:
                pull._put(
                    {
                        "status": f"pulling {self.file}",
                        "digest": self.file,
                        "total": self.total,
                        "completed": self.completed,
                    }
                )

            def __enter__(self) -> Progress:
                return self

            def __exit__(self, *exc) -> None:
                pass

        return Progress


class Pulls:
    """The server's downloads: a few threads of their own, and a limit."""

    def __init__(self, limit: int = MAX_PULLS) -> None:
        self.limit = limit
        self._pool = ThreadPoolExecutor(limit, thread_name_prefix="r1local-pull")
        self._running: dict[Future, Pull] = {}

    def start(self, target: Target) -> Pull:
        self._running = {future: pull for future, pull in self._running.items() if not future.done()}
        if len(self._running) >= self.limit:
            raise Overloaded(
                f"{len(self._running)} downloads are running, the most this server runs at once.",
                "Retry when one of them finishes.",
            )
        pull = Pull(target, asyncio.get_running_loop())
        self._running[self._pool.submit(pull.run)] = pull
        return pull

    def stop(self) -> None:
        for pull in self._running.values():
            pull.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
