"""The llama.cpp handles behind one model: load with clear errors, tokenise, render pieces.

Everything here is a thin layer over llama-cpp-python's C bindings; the scheduler drives decoding.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections import deque
from pathlib import Path

from .. import config
from ..errors import ModelFileError
from .bindings import C
from .vocab import VocabMethods

_log_lock = threading.Lock()
_log_tail: deque[str] = deque(maxlen=40)  # llama.cpp's recent log lines, for error messages


@C.llama_log_callback
def _log_sink(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    line = text.decode("utf-8", "replace")
    with _log_lock:
        _log_tail.append(line)
    if config.debug():
        import sys

        sys.stderr.write(line)


_backend_ready = False


def _init_backend() -> None:
    global _backend_ready
    if not _backend_ready:
        C.llama_log_set(_log_sink, ctypes.c_void_p())
        C.llama_backend_init()
        _backend_ready = True


def _last_log_error() -> str:
    with _log_lock:
        lines = [line.strip() for line in _log_tail if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "unknown" in line.lower()]
    return (errors or lines or [""])[-1]


class NativeModel(VocabMethods):
    """A loaded llama_model, its vocabulary and one llama_context with n_seq slots."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx_seq: int,
        n_seq: int,
        n_gpu_layers: int,
        n_threads: int,
        n_batch: int,
        map_file: bool = True,
        tiled_matmul: bool = True,
        placement=None,
    ) -> None:
        _init_backend()
        if not tiled_matmul:
            # llama.cpp reads this switch once per process, at its first matmul; a user's own setting wins.
            os.environ.setdefault("GGML_CPU_TILED_MM", "0")
        self.path = path
        self.n_gpu_layers = n_gpu_layers
        mparams = C.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers
        mparams.load_mode = C.LLAMA_LOAD_MODE_AUTO if map_file else C.LLAMA_LOAD_MODE_NONE
        if placement is not None:
            placement(mparams)
        with _log_lock:
            _log_tail.clear()
        self.model = C.llama_model_load_from_file(str(path).encode(), mparams)
        if not self.model:
            raise ModelFileError(
                f"llama.cpp could not load {path.name}: {_last_log_error() or 'unknown reason'}.",
                "Check that the architecture is supported by the installed llama-cpp-python "
                "(upgrade it), or download the file again.",
            )
        self._init_vocab()
        self.n_ctx_train = C.llama_model_n_ctx_train(self.model)

        cparams = C.llama_context_default_params()
        # Independent KV streams per slot: each sequence gets exactly n_ctx_seq cells.
        cparams.n_ctx = n_ctx_seq * n_seq
        cparams.n_seq_max = n_seq
        cparams.kv_unified = False
        cparams.n_batch = n_batch
        cparams.n_ubatch = min(n_batch, 512)
        cparams.n_threads = n_threads
        cparams.n_threads_batch = n_threads
        cparams.no_perf = True
        self.ctx = C.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            C.llama_model_free(self.model)
            raise ModelFileError(
                f"llama.cpp could not create a context for {path.name}: {_last_log_error()}.",
                "Try a smaller --ctx or fewer --parallel slots.",
            )
        self.memory = C.llama_get_memory(self.ctx)
        self.n_ctx_seq = C.llama_n_ctx_seq(self.ctx)
        self.n_seq = n_seq
        self.n_batch = n_batch

    # -- KV cache --
    def forget(self, seq: int, from_pos: int = 0) -> None:
        """Drop a sequence's cells from from_pos on."""
        C.llama_memory_seq_rm(self.memory, seq, from_pos, -1)

    def close(self) -> None:
        if self.ctx:
            C.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            C.llama_model_free(self.model)
            self.model = None

