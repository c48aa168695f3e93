"""The child process behind SplitModel: adds the workers' devices, loads the model with the split
plan through r1local's own engine, and serves the parent's requests over a pipe."""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from collections import deque
from pathlib import Path

from ..errors import R1Error
from .plan import SplitPlan

_BUFFER_LINE = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB")


def main(
    conn,
    path: str,
    plan: SplitPlan,
    build_dir: Path,
    name: str,
    n_parallel: int,
    n_threads: int | None,
    max_queue: int | None,
    kv_type: str | None = None,
    speculation=None,
) -> None:
    from .. import fit
    from ..engine import native
    from ..engine.model import Model
    from . import backend

    native._log_tail = deque(maxlen=4000)  # keep the whole load log: it says what went where
    # a lost worker is expected here: ggml's one-line abort message, without a debugger backtrace
    os.environ["GGML_NO_BACKTRACE"] = "1"
    try:
        devices = backend.worker_devices(plan.endpoints, build_dir)
        devices += backend.local_gpus()[: len(plan.tensor_split) - len(devices)]  # the GPUs the plan counted
        # this machine's fit for the rest (threads, file mapping); the layers that leave are the split's,
        # which the local fit alone would keep on a PC without a GPU
        here = dataclasses.replace(
            fit.plan_for_file(path, plan.n_ctx, n_parallel),
            n_ctx=plan.n_ctx,
            n_gpu_layers=plan.n_gpu_layers,
            tensor_split=[],
        )
        model = Model.load(
            path,
            name=name,
            n_ctx=plan.n_ctx,
            n_parallel=n_parallel,
            n_gpu_layers=plan.n_gpu_layers,
            n_threads=n_threads,
            max_queue=max_queue,
            plan=here,
            kv_type=kv_type,
            speculation=speculation,
            placement=backend.Placement(devices, plan.tensor_split),
        )
    except R1Error as error:
        conn.send(("error", (type(error), error.message, error.hint)))
        return
    with native._log_lock:
        buffers = {m[1]: float(m[2]) for m in map(_BUFFER_LINE.search, native._log_tail) if m}
    conn.send(
        (
            "ready",
            {
                "n_ctx": model.n_ctx,
                "n_parallel": model.n_parallel,
                "n_gpu_layers": model.n_gpu_layers,
                "template": (
                    None if model.template.is_fallback else model.template.source,
                    model.template.bos_token,
                    model.template.eos_token,
                    model.template.builtin,
                ),
                "n_threads": model.n_threads,
                "buffers": buffers,
                "stats": model.stats(),
            },
        )
    )
    _serve(conn, model)


def _serve(conn, model) -> None:
    send_lock = threading.Lock()
    streams: dict = {}

    def send(*message) -> None:
        with send_lock:
            conn.send(message)

    def relay(request: int, stream) -> None:
        for event in stream:
            send("event", request, event)
        streams.pop(request, None)

    while True:
        kind, *args = conn.recv()
        if kind == "close":
            model.close()
            return
        if kind == "cancel":
            if (stream := streams.get(args[0])) is not None:
                stream.cancel()
            continue
        request, *args = args
        try:
            if kind == "submit":
                tokens, params, split_reasoning, in_reasoning, parse_tools = args
                stream = model._submit(
                    tokens, params, split_reasoning=split_reasoning, in_reasoning=in_reasoning, parse_tools=parse_tools
                )
                streams[request] = stream
                send("ok", request, None)
                threading.Thread(target=relay, args=(request, stream), daemon=True).start()
            elif kind == "prompt_tokens":
                send("ok", request, model.prompt_tokens(args[0]))
            elif kind == "tokenize":
                send("ok", request, model.tokenize(args[0], add_special=args[1]))
            else:
                send("ok", request, model.stats())
        except R1Error as error:
            send("error", request, (type(error), error.message, error.hint))
