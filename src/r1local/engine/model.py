"""The llama.cpp engine: the GGUF's metadata, its chat template, and the scheduler that serves it."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .. import config, fit, hardware
from ..errors import ModelNotFound, OutOfMemory, UsageError
from ..fit_draft import draft_placement
from ..gguf_meta import GGUFInfo, read_gguf
from .base import Engine
from .bindings import C
from .draft import DraftModel
from .embedding import Embedder
from .native import NativeModel
from .params import SamplingParams
from .scheduler import Scheduler
from .speculative import Speculation
from .stream import Stream


def _where(p: fit.FitPlan) -> str:
    return f"{p.n_gpu_layers} GPU layers, context {p.n_ctx}" if p.n_gpu_layers else f"on the CPU, context {p.n_ctx}"


class Model(Engine):
    engine = "llama.cpp"

    def __init__(
        self,
        name: str,
        info: GGUFInfo,
        native: NativeModel,
        max_queue: int,
        speculation: Speculation | None = None,
        n_threads: int | None = None,
        draft_plan: fit.FitPlan | None = None,
    ) -> None:
        """draft_plan: the draft model's GPU layers and KV type (fit_draft); None: on the CPU, f16."""
        self.name = name
        self.info = info
        self.native = native
        self.path = native.path
        self.n_ctx = native.n_ctx_seq
        self.n_parallel = native.n_seq
        self.n_gpu_layers = native.n_gpu_layers  # as loaded, after the fit's choice
        self.device = "GPU" if self.n_gpu_layers else "CPU"
        self.vocab = native
        self.template = native.chat_template()
        self.placement = native.placement  # where llama.cpp put the weights, KV cache and buffers
        self.plan: fit.FitPlan | None = None  # the plan it was loaded with
        self.draft = None  # the draft model, when one guesses tokens (--draft)
        if speculation and speculation.draft:
            self.draft = DraftModel(
                Path(speculation.draft),
                native,
                n_threads or C.llama_n_threads(native.ctx),
                n_gpu_layers=draft_plan.n_gpu_layers if draft_plan else 0,
                kv_type=draft_plan.kv_type if draft_plan else "f16",
                p_min=speculation.p_min,
            )
        self.scheduler = Scheduler(native, max_queue, config.prefix_cache_bytes(), speculation, self.draft)
        self._embedders: dict[str | None, Embedder] = {}
        self._embedder_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        name: str | None = None,
        n_ctx: int | None = None,
        n_parallel: int = 1,
        n_gpu_layers: int | None = None,
        tensor_split: Sequence[float] | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
        max_queue: int | None = None,
        map_file: bool | None = None,
        placement: Callable[[Any], None] | None = None,
        plan: fit.FitPlan | None = None,
        kv_type: str | None = None,
        speculation: Speculation | None = None,
        abort: Callable[[], bool] | None = None,
    ) -> Model:
        """Load with `plan` (default: the fit's plan for this machine, around the caller's
        n_gpu_layers and tensor_split, the GPUs' shares). When llama.cpp runs out of memory (taken
        by another program since the plan was made), step down to fewer GPU layers, then a smaller
        context, and say so in load_note. `placement` sets llama_model_params' devices and tensor split (RPC workers, rpc/)."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise ModelNotFound(f"No model file at {path}.", "Check the path, or pull a model first.")
        if n_parallel < 1 or (n_ctx is not None and n_ctx < 16) or n_batch < n_parallel:
            raise UsageError("--parallel must be >= 1, --ctx >= 16 and n_batch >= --parallel.")
        info = read_gguf(path)  # a clear error for files that are not GGUF or are cut short
        chosen = plan or fit.plan_for_file(
            path, n_ctx or config.DEFAULT_CTX, n_parallel, n_gpu_layers, tensor_split, kv_type or config.kv_type()
        )
        if n_ctx:  # the caller's context wins over the fit's
            chosen = dataclasses.replace(chosen, n_ctx=n_ctx)
        attempt = chosen
        while True:
            try:
                native = NativeModel(
                    path,
                    n_ctx_seq=attempt.n_ctx,
                    n_seq=n_parallel,
                    n_gpu_layers=attempt.n_gpu_layers,
                    n_threads=n_threads or attempt.n_threads,
                    n_batch=n_batch,
                    map_file=attempt.map_file if map_file is None else map_file,
                    tiled_matmul=attempt.tiled_matmul,
                    tensor_split=attempt.tensor_split,
                    flash_attn=attempt.flash_attn,
                    offload_kv=attempt.offload_kv,
                    kv_type=attempt.kv_type,
                    placement=placement,
                    abort=abort,
                )
                break
            except OutOfMemory:
                shape = fit.ModelShape.from_gguf(info)
                smaller = None if n_gpu_layers is not None else fit.step_down(shape, hardware.detect_now(), attempt)
                if smaller is None:
                    raise
                attempt = smaller
        drafting = speculation.draft if speculation else None
        try:
            model = cls(
                name or path.stem,
                info,
                native,
                4 * n_parallel if max_queue is None else max_queue,
                speculation,
                n_threads,
                draft_placement(drafting, hardware.detect_live(), attempt) if drafting else None,
            )
        except BaseException:
            native.close()
            raise
        model.plan = attempt
        if attempt is not chosen:
            model.load_note = (
                f"{model.name} did not fit in the memory free now as planned ({_where(chosen)}); "
                f"loaded with {_where(attempt)}"
            )
        elif not attempt.n_gpu_layers and (build := hardware.detect_live().build):
            model.load_note = build.cpu_fallback_note()
        if attempt.kv_note:
            model.load_note = "; ".join(filter(None, (model.load_note, attempt.kv_note)))
        return model

    # -- requests --
    def prompt_tokens(self, text: str) -> list[int]:
        return self.native.prompt_tokens(text)

    def _submit(
        self,
        tokens: list[int],
        params: SamplingParams,
        *,
        split_reasoning: bool,
        in_reasoning: bool,
        parse_tools: bool = False,
    ) -> Stream:
        return self.scheduler.submit(
            tokens, params, split_reasoning=split_reasoning, in_reasoning=in_reasoning, parse_tools=parse_tools
        )

    def embed_rows(
        self, texts: Sequence[str | list[int | str]], *, truncate: bool = True, pooling: str | None = None
    ) -> tuple[list[list[list[float]]], int]:
        """Blocking: call it from a worker thread (an embedding context is made on first use, one
        per pooling asked for)."""
        with self._embedder_lock:
            if (embedder := self._embedders.get(pooling)) is None:
                embedder = self._embedders[pooling] = Embedder(
                    self.native, self.info.architecture, self.n_threads, pooling
                )
        inputs = [embedder.tokens(text, truncate) for text in texts]
        return embedder.embed(inputs), sum(map(len, inputs))

    @property
    def n_threads(self) -> int:
        return C.llama_n_threads(self.native.ctx)

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        return self.native.tokenize(text, add_special=add_special)

    def admission_held(self) -> AbstractContextManager[None]:
        return self.scheduler.queue.held()

    def stats(self) -> dict:
        return self.scheduler.stats()

    def memory_bytes(self) -> tuple[int, int] | None:
        """What llama.cpp allocated for the model and its draft model (RAM, VRAM)."""
        placements = [self.placement, *([self.draft.native.placement] if self.draft else [])]
        if not self.placement.buffers:
            return None
        return sum(p.host_bytes for p in placements), sum(p.device_bytes for p in placements)

    def describe(self) -> dict:
        drafting = {"draft": self.draft.path.stem} if self.draft else {}
        return {**super().describe(), "kv_type": self.native.kv_type, **drafting}

    def close(self) -> None:
        for embedder in self._embedders.values():
            embedder.close()
        self.scheduler.close()
        if self.draft:
            self.draft.close()
        self.native.close()
        self.template.close()
