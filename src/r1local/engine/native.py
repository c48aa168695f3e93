"""The llama.cpp handles behind one model: load with clear errors, tokenise, render pieces.

Everything here is a thin layer over llama-cpp-python's C bindings; the scheduler drives decoding.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from .. import config
from ..errors import Cancelled, ModelFileError, OutOfMemory
from .bindings import C
from .placement import Placement, wanted
from .vocab import VocabMethods

_log_lock = threading.Lock()
_log_tail: deque[str] = deque(maxlen=40)  # llama.cpp's recent log lines, for error messages
_placement_lines: list[str] = []  # the current load's buffer and offload lines


@C.llama_log_callback
def _log_sink(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    line = text.decode("utf-8", "replace")
    with _log_lock:
        _log_tail.append(line)
        if wanted(line):
            _placement_lines.append(line)
    if config.debug():
        import sys

        sys.stderr.write(line)


_backend_ready = False


def _init_backend() -> None:
    global _backend_ready
    # before every load: importing llama_cpp's high-level package (its Llama class) installs its own
    # log callback, and the placement is read from llama.cpp's log lines
    C.llama_log_set(_log_sink, ctypes.c_void_p())
    if not _backend_ready:
        C.llama_backend_init()
        _backend_ready = True


def _last_log_error() -> str:
    with _log_lock:
        lines = [line.strip() for line in _log_tail if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "unknown" in line.lower()]
    return (errors or lines or [""])[-1]


FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}  # enum llama_flash_attn_type
KV_GGML_TYPE = {"f16": 1, "q4_0": 2, "q8_0": 8}  # enum ggml_type


def _ran_out_of_memory() -> bool:
    with _log_lock:
        return any(word in line for line in _log_tail for word in OUT_OF_MEMORY)


OUT_OF_MEMORY = ("failed to allocate", "unable to allocate", "out of memory", "OutOfDeviceMemory", "OutOfHostMemory")
MEMORY_HINT = "Close programs that hold GPU memory or RAM, or lower --gpu-layers, --ctx or --parallel."


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
        tensor_split: list[float] | None = None,
        flash_attn: str = "auto",
        offload_kv: bool = True,
        kv_type: str = "f16",
        abort: Callable[[], bool] | None = None,
    ) -> None:
        """abort: asked while the weights load; True stops the load (Cancelled)."""
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
        if tensor_split and placement is None:  # each GPU's share of the offloaded layers, in llama.cpp's device order
            split = (ctypes.c_float * C.llama_max_devices())(*tensor_split)
            mparams.tensor_split = ctypes.cast(split, ctypes.POINTER(ctypes.c_float))
        if abort is not None:  # llama.cpp stops loading when its progress callback returns false
            progress = C.llama_progress_callback(lambda _fraction, _data: not abort())
            mparams.progress_callback = progress
        with _log_lock:
            _log_tail.clear()
            _placement_lines.clear()
        self.model = C.llama_model_load_from_file(str(path).encode(), mparams)
        if not self.model and abort is not None and abort():
            raise Cancelled(f"Loading {path.name} was cancelled.")
        if not self.model and _ran_out_of_memory():
            raise OutOfMemory(f"llama.cpp ran out of memory loading {path.name}: {_last_log_error()}.", MEMORY_HINT)
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
        # llama.cpp reads a quantised V cache only inside its flash-attention kernel
        cparams.flash_attn_type = FLASH_ATTN["on" if kv_type != "f16" else flash_attn]
        cparams.type_k = cparams.type_v = KV_GGML_TYPE[kv_type]
        cparams.offload_kqv = offload_kv
        self.ctx = C.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            C.llama_model_free(self.model)
            if _ran_out_of_memory():
                raise OutOfMemory(
                    f"llama.cpp ran out of memory creating the context for {path.name}: {_last_log_error()}.",
                    MEMORY_HINT,
                )
            raise ModelFileError(
                f"llama.cpp could not create a context for {path.name}: {_last_log_error()}.",
                "Try a smaller --ctx or fewer --parallel slots.",
            )
        with _log_lock:
            self.placement = Placement.parse(_placement_lines)  # where llama.cpp really put it
        self.memory = C.llama_get_memory(self.ctx)
        self.n_ctx_seq = C.llama_n_ctx_seq(self.ctx)
        self.kv_type = kv_type
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
