"""What the installed llama.cpp build can use: its system info line, whether it can offload to a
GPU, and its ggml backend devices (through ctypes on the libggml llama-cpp-python ships)."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

from .model import GGMLDevice, LlamaBuild
from .probe import Probe

DEVICE_TYPES = ["cpu", "gpu", "igpu", "accel", "meta"]  # enum ggml_backend_dev_type


def _libggml(package_dir: Path) -> ctypes.CDLL:
    """The libggml that llama_cpp already loaded (same path, so the same handle and registry)."""
    names = {"win32": ["ggml.dll"], "darwin": ["libggml.dylib"]}.get(sys.platform, ["libggml.so"])
    for lib in (package_dir / "lib", package_dir):
        for name in names:
            if (lib / name).exists():
                return ctypes.CDLL(str(lib / name))
    raise OSError("libggml not found next to llama_cpp")


def _devices(lib: ctypes.CDLL) -> list[dict]:
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    for fn in (lib.ggml_backend_dev_name, lib.ggml_backend_dev_description):
        fn.restype, fn.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype, lib.ggml_backend_dev_type.argtypes = ctypes.c_int, [ctypes.c_void_p]
    lib.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p] + [ctypes.POINTER(ctypes.c_size_t)] * 2
    devices = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        kind = lib.ggml_backend_dev_type(dev)
        devices.append(
            {
                "name": lib.ggml_backend_dev_name(dev).decode(errors="replace"),
                "description": lib.ggml_backend_dev_description(dev).decode(errors="replace"),
                "type": DEVICE_TYPES[kind] if 0 <= kind < len(DEVICE_TYPES) else str(kind),
                "memory_free": free.value or None,
                "memory_total": total.value or None,
            }
        )
    return devices


def _registries(lib: ctypes.CDLL) -> list[str]:
    """The backends compiled in ("CPU", "Vulkan", "RPC"), with devices or without."""
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_get.restype, lib.ggml_backend_reg_get.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    lib.ggml_backend_reg_name.restype, lib.ggml_backend_reg_name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    return [
        lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)).decode(errors="replace")
        for i in range(lib.ggml_backend_reg_count())
    ]


# ggml backend libraries by file name -> the name their registry takes (libggml-vulkan.so -> Vulkan)
LIBRARY_BACKENDS = {
    "cuda": "CUDA",
    "hip": "ROCm",
    "vulkan": "Vulkan",
    "metal": "Metal",
    "sycl": "SYCL",
    "opencl": "OpenCL",
    "musa": "MUSA",
    "cann": "CANN",
}
VULKAN_DRIVER_DIRS = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"]


def shipped_backends(package_dir: Path) -> list[str]:
    """The GPU backends whose libraries ship with llama_cpp, registered or not: a backend whose
    driver is missing (Vulkan without any ICD) never registers, and would otherwise go unseen."""
    found = []
    for lib in sorted({*(package_dir / "lib").glob("*ggml-*"), *package_dir.glob("*ggml-*")}):
        stem = lib.name.removeprefix("lib").split(".")[0].removeprefix("ggml-")
        if (name := LIBRARY_BACKENDS.get(stem)) and name not in found:
            found.append(name)
    return found


def vulkan_drivers() -> list[str]:
    """The Vulkan drivers (ICD files) the loader would find; VK_ICD_FILENAMES overrides the folders."""
    if listed := os.environ.get("VK_ICD_FILENAMES") or os.environ.get("VK_DRIVER_FILES"):
        return [f for f in listed.split(os.pathsep) if f]
    return sorted(p.name for d in VULKAN_DRIVER_DIRS for p in Path(d).glob("*.json"))


def _query() -> dict:
    import importlib.metadata

    from ..engine.bindings import C

    package = Path(C.__file__).parent
    try:
        lib = _libggml(package)
        devices, registries = _devices(lib), _registries(lib)
    except (OSError, AttributeError):  # an older or unusual build: the rest still tells a lot
        devices, registries = [], []
    shipped = shipped_backends(package)
    return {
        "shipped": shipped,
        "vulkan_drivers": vulkan_drivers() if "Vulkan" in shipped + registries else None,
        "version": importlib.metadata.version("llama-cpp-python"),
        "system_info": C.llama_print_system_info().decode(errors="replace").strip(),
        "gpu_offload": bool(C.llama_supports_gpu_offload()),
        "devices": devices,
        "registries": registries,
    }


def parse_system_info(text: str) -> dict[str, dict[str, str]]:
    """ "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX2 = 1 |" ->
    {"CUDA": {"ARCHS": "890", "USE_GRAPHS": "1"}, "CPU": {"SSE3": "1", "AVX2": "1"}}"""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for item in text.split("|"):
        if " : " in item:
            name, item = item.split(" : ", 1)
            current = sections.setdefault(name.strip(), {})
        if "=" in item and current is not None:
            key, value = item.split("=", 1)
            current[key.strip()] = value.strip()
    return sections


def detect_build(probe: Probe) -> LlamaBuild | None:
    raw = probe.call("llama_cpp.build", _query)
    if not raw:
        return None
    info = raw.get("system_info") or ""
    return LlamaBuild(
        version=raw.get("version"),
        system_info=info,
        gpu_offload=bool(raw.get("gpu_offload")),
        backends=parse_system_info(info),
        devices=[GGMLDevice(**d) for d in raw.get("devices") or []],
        registries=raw.get("registries") or [],
        shipped=raw.get("shipped") or [],
        vulkan_drivers=raw.get("vulkan_drivers"),
    )
