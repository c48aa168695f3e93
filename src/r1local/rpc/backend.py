"""The RPC backend inside this process: load it into the libggml llama-cpp-python uses, add workers'
devices, and hand them to llama.cpp's model loader.

Through ggml's backend registry only (ctypes on llama-cpp-python's own libggml): a llama-cpp-python
built with GGML_RPC (`r1local accelerate`) already has the backend, any other gets the one built
from its own sources (build.py) with ggml_backend_load().
"""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path

from . import build

_ADD_SERVER = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)


@cache
def _libggml() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build.llama_lib_dir() / "libggml.so"))  # the handle llama_cpp already holds
    signatures = {
        "ggml_backend_reg_by_name": (ctypes.c_void_p, [ctypes.c_char_p]),
        "ggml_backend_load": (ctypes.c_void_p, [ctypes.c_char_p]),
        "ggml_backend_reg_get_proc_address": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
        "ggml_backend_reg_dev_count": (ctypes.c_size_t, [ctypes.c_void_p]),
        "ggml_backend_reg_dev_get": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t]),
        "ggml_backend_dev_count": (ctypes.c_size_t, []),
        "ggml_backend_dev_get": (ctypes.c_void_p, [ctypes.c_size_t]),
        "ggml_backend_dev_type": (ctypes.c_int, [ctypes.c_void_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


@cache
def _rpc_registry(folder: Path) -> int:
    lib = _libggml()
    reg = lib.ggml_backend_reg_by_name(b"RPC")
    if not reg:
        reg = lib.ggml_backend_load(str(folder / build.BACKEND).encode())
    if not reg:
        raise build.RPCBuildError(
            "llama.cpp could not load the RPC backend built for it.",
            "Delete R1LOCAL_HOME/rpc to rebuild it, or run with R1LOCAL_DEBUG=1 to see why.",
        )
    return reg


def worker_devices(endpoints: list[str], folder: Path) -> list[int]:
    """ggml devices for every worker, in order (`folder`: build.ensure_built()'s). Each worker must
    have answered probe() just before: ggml's client aborts the process on a worker that does not answer."""
    lib = _libggml()
    reg = _rpc_registry(folder)
    add_server = _ADD_SERVER(lib.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_rpc_add_server"))
    devices = []
    for endpoint in endpoints:
        server = add_server(endpoint.encode())
        devices += [lib.ggml_backend_reg_dev_get(server, i) for i in range(lib.ggml_backend_reg_dev_count(server))]
    return devices


def local_gpus() -> list[int]:
    """This machine's own GPU devices (llama.cpp puts workers first, then these)."""
    lib = _libggml()
    devices = (lib.ggml_backend_dev_get(i) for i in range(lib.ggml_backend_dev_count()))
    return [d for d in devices if lib.ggml_backend_dev_type(d) in (1, 2)]  # GGML_BACKEND_DEVICE_TYPE_GPU, IGPU


class Placement:
    """Sets llama_model_params' device list and tensor split; keeps the ctypes arrays alive."""

    def __init__(self, devices: list[int], tensor_split: list[float]) -> None:
        from ..engine.bindings import C

        self._devices = (ctypes.c_void_p * (len(devices) + 1))(*devices, None)
        split = tensor_split + [0.0] * (C.llama_max_devices() - len(tensor_split))
        self._split = (ctypes.c_float * len(split))(*split)

    def __call__(self, mparams) -> None:
        mparams.devices = ctypes.cast(self._devices, ctypes.c_void_p)
        mparams.tensor_split = self._split
