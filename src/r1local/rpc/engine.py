"""A model spread over RPC workers, run in a child process so a lost worker cannot take us down.

ggml's RPC client aborts its process when a worker stops answering (GGML_ABORT in ggml-rpc.cpp), and
llama_decode has no way to report it. So the llama.cpp side of a split model lives in a child
process that runs r1local's own engine (Model, its scheduler and continuous batching); this class
is the Engine the parent holds. When the child dies, every request in flight ends with
an error naming the worker that went away, `lost` is set, and the caller loads the model again.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..engine.base import Engine
from ..engine.capabilities import Capabilities
from ..engine.events import Done, Timings, Usage
from ..engine.params import SamplingParams
from ..engine.speculative import Speculation
from ..engine.stream import Stream
from ..engine.template import ChatTemplate
from ..engine.vocab import LlamaVocab
from ..errors import Cancelled, R1Error, WorkerLost
from ..gguf_meta import read_gguf
from . import child
from .plan import SplitPlan
from .probe import reachable

CANCEL_POLL_S = 0.05
ABORT_POLL_S = 0.1  # how often a load asks whether anyone still waits for it


def _rebuild(kind: type[R1Error], message: str, hint: str | None) -> R1Error:
    error = kind.__new__(kind)
    R1Error.__init__(error, message, hint)
    return error


class SplitModel(Engine):
    """The llama.cpp engine in a child process: prompts are rendered here with the model's own
    template (Engine.chat), tokens and generation happen there."""

    engine = "llama.cpp"

    def __init__(
        self,
        path: Path,
        plan: SplitPlan,
        build_dir: Path,
        *,
        name: str | None,
        n_parallel: int,
        n_threads: int | None,
        max_queue: int | None,
        kv_type: str | None = None,
        speculation: Speculation | None = None,
        abort: Callable[[], bool] | None = None,
    ) -> None:
        """abort: asked while the child loads; True ends the child (Cancelled)."""
        self.path = Path(path)
        self.name = name or self.path.stem
        self.info = read_gguf(self.path)
        self.plan = plan
        self.endpoints = plan.endpoints
        self.lost: str | None = None  # why the child died, once it has
        self.down: list[str] = []  # the workers found not answering when it did
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or handles inherited
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=child.main,
            name=f"r1local-split-{self.name}",
            daemon=True,
            args=(
                child_conn,
                str(self.path),
                plan,
                build_dir,
                self.name,
                n_parallel,
                n_threads,
                max_queue,
                kv_type,
                speculation,
            ),
        )
        self._process.start()
        child_conn.close()
        self._send_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._calls: dict[int, list] = {}  # request id -> [event, answer]
        self._ids = itertools.count(1)
        ready = self._wait_ready(abort)
        if ready is None or ready[0] != "ready":
            self._process.join(5)
            if ready and ready[0] == "error":
                raise _rebuild(*ready[1])
            raise WorkerLost(
                f"The process loading {self.name} over RPC ended (exit code {self._process.exitcode}).",
                "Check that every worker is up; R1LOCAL_DEBUG=1 shows llama.cpp's log.",
            )
        attrs = ready[1]
        self.n_ctx, self.n_parallel, self.n_gpu_layers = attrs["n_ctx"], attrs["n_parallel"], attrs["n_gpu_layers"]
        self.n_threads = attrs["n_threads"]
        self.template = ChatTemplate(*attrs["template"])
        self.vocab = LlamaVocab(self.path)  # token ids here too (tools' markers, /tokenize, suffix): no weights read
        self.device = "CPU + RPC " + ", ".join(self.endpoints)
        self.buffers: dict[str, float] = attrs["buffers"]  # MiB of weights llama.cpp put on each device
        self._stats: dict = attrs["stats"]
        self._reader = threading.Thread(target=self._read, name=f"r1local-split-{self.name}", daemon=True)
        self._reader.start()
        self._watcher = threading.Thread(target=self._watch_cancels, daemon=True)
        self._watcher.start()

    @property
    def capabilities(self) -> Capabilities:
        """llama.cpp's, but embeddings: the child process has no embedding context."""
        return replace(super().capabilities, embeddings=False)

    def _wait_ready(self, abort: Callable[[], bool] | None) -> tuple | None:
        """The child's first message (None if it ended without one); a load nobody waits for any
        more ends the child, as llama.cpp's own loader stops between tensors."""
        while not self._conn.poll(ABORT_POLL_S):
            if abort is not None and abort():
                self._process.kill()
                self._process.join()
                self._conn.close()
                raise Cancelled(f"The load of {self.name} over RPC was stopped.")
        try:
            return self._conn.recv()
        except EOFError:  # it ended first
            return None

    # -- requests --
    def prompt_tokens(self, text: str) -> list[int]:
        return self._call("prompt_tokens", text)

    def _submit(
        self,
        tokens: list[int],
        params: SamplingParams,
        *,
        split_reasoning: bool,
        in_reasoning: bool,
        parse_tools: bool = False,
    ) -> Stream:
        stream = Stream()
        request = next(self._ids)
        self._streams[request] = stream
        self._call(
            "submit", tokens, params, split_reasoning, in_reasoning, parse_tools, request=request
        )  # admitted or refused
        return stream

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        return self._call("tokenize", text, add_special)

    def stats(self) -> dict:
        """The scheduler's counters; once lost, the last ones read with nothing busy."""
        if self.lost:
            return {**self._stats, "busy_slots": 0, "queued": 0}
        self._stats = self._call("stats")
        return self._stats

    def describe(self) -> dict:
        """`ps` shows each worker, and why the model stopped when one went away."""
        workers = [{"endpoint": e, "status": "down" if e in self.down else "up"} for e in self.endpoints]
        return {**super().describe(), "workers": workers, **({"error": self.lost} if self.lost else {})}

    def close(self) -> None:
        if self._process.is_alive():
            try:
                with self._send_lock:
                    self._conn.send(("close",))
            except OSError:
                pass
            self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()
        self.vocab.close()

    # -- plumbing --
    def _call(self, kind: str, *args, request: int | None = None):
        if self.lost:
            raise WorkerLost(f"{self.lost}.", "The model loads again on the next request once the worker is back.")
        request = request or next(self._ids)
        waiter = self._calls[request] = [threading.Event(), None]
        try:
            with self._send_lock:
                self._conn.send((kind, request, *args))
        except OSError:
            self._calls.pop(request, None)
            self._streams.pop(request, None)
            raise WorkerLost(self.lost or "The process running the split model has ended.") from None
        waiter[0].wait()
        ok, value = waiter[1]
        if not ok:
            self._streams.pop(request, None)
            raise _rebuild(*value)
        return value

    def _read(self) -> None:
        try:
            while True:
                kind, request, payload = self._conn.recv()
                if kind == "event":
                    stream = self._streams.get(request)
                    if stream is not None:
                        stream.push(payload)
                        if isinstance(payload, Done):
                            self._streams.pop(request, None)
                elif (waiter := self._calls.pop(request, None)) is not None:  # "ok" / "error": an answer
                    waiter[1] = (kind == "ok", payload)
                    waiter[0].set()
        except (EOFError, OSError):
            self._on_child_exit()

    def _on_child_exit(self) -> None:
        self._process.join(5)
        self.down = down = [e for e in self.endpoints if not reachable(e, timeout=3.0)]
        who = (
            f"RPC worker{'s' if len(down) > 1 else ''} {', '.join(down)} stopped answering"
            if down
            else "the process running the split model ended"
        )
        self.lost = f"{who} while {self.name} was loaded over it"
        done = Done("error", Usage(0, 0), Timings(0.0, 0.0, 0.0, 0.0), error=self.lost)
        for stream in list(self._streams.values()):
            stream.push(done)
        self._streams.clear()
        for waiter in list(self._calls.values()):
            waiter[1] = (False, (WorkerLost, f"{self.lost}.", None))
            waiter[0].set()
        self._calls.clear()

    def _watch_cancels(self) -> None:
        """Stream.cancel() sets a flag in this process; pass it on to the child's scheduler."""
        cancelled: set[int] = set()
        while self._process.is_alive():
            for request, stream in list(self._streams.items()):
                if stream.cancelled and request not in cancelled:
                    cancelled.add(request)
                    try:
                        with self._send_lock:
                            self._conn.send(("cancel", request))
                    except OSError:
                        return
            self._process.join(CANCEL_POLL_S)
