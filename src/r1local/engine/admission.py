"""The queue in front of an engine's slots, shared by llama.cpp's scheduler and the OpenVINO engine:
requests wait in order, one past the slots and the queue's bound is refused (Overloaded, a 503 with
Retry-After), and the counters /metrics reads are kept in one place."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from ..errors import Overloaded

Job = TypeVar("Job")


class Admission(Generic[Job]):
    """`cond` guards `waiting`, the counters and the engine's own slot state; `busy()` (called with
    it held) counts the slots in use."""

    def __init__(self, n_slots: int, max_queue: int, busy: Callable[[], int], *extra_counters: str) -> None:
        self.n_slots = n_slots
        self.max_queue = max_queue
        self.busy = busy
        self.waiting: deque[Job] = deque()
        self.cond = threading.Condition()
        self.running = True
        self.holds = 0  # blocks inside held(): nothing is admitted while one runs
        self.counters = dict.fromkeys(
            (
                "requests_total",
                "prompt_tokens_total",
                "completion_tokens_total",
                "cached_tokens_total",
                "rejected_total",
                *extra_counters,
            ),
            0,
        )

    def enqueue(self, job: Job) -> None:
        """Queue `job`, or refuse it when every slot is busy and the queue is full."""
        with self.cond:
            if self.busy() + len(self.waiting) >= self.n_slots + self.max_queue:
                self.counters["rejected_total"] += 1
                raise Overloaded("Every slot is busy and the queue is full.", "Retry in a moment.")
            self.waiting.append(job)
            self.counters["requests_total"] += 1
            self.cond.notify()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Admit nothing while the block runs, so the jobs it queues start in one step: the choices
        of one request then go through llama.cpp's kernels in the same batch shapes (its quantised
        CPU kernels are not batch-invariant, and greedy choices queued apart could part)."""
        with self.cond:
            self.holds += 1
        try:
            yield
        finally:
            with self.cond:
                self.holds -= 1
                self.cond.notify()

    def admissible(self) -> bool:
        """Whether a job waits and may be admitted now (call with `cond` held)."""
        return bool(self.waiting) and not self.holds

    def finished(self, prompt_tokens: int, generated: int) -> None:
        """A request's tokens, counted once it ends."""
        self.counters["prompt_tokens_total"] += prompt_tokens
        self.counters["completion_tokens_total"] += generated

    def stats(self, **extra: int) -> dict:
        with self.cond:
            return dict(busy_slots=self.busy(), slots=self.n_slots, queued=len(self.waiting), **extra, **self.counters)

    def stop(self) -> None:
        with self.cond:
            self.running = False
            self.cond.notify()
