"""llama.cpp's GPU backends: which one drives which GPU, and the CMake flags that build it.

`hw` names the backend a GPU needs; `r1local accelerate` builds it. Every build also carries the
RPC backend, which spreading a model over several machines needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import GPU


@dataclass(frozen=True)
class Backend:
    name: str  # what `r1local accelerate --backend` takes
    label: str  # how llama.cpp names it in its system info and device names
    cmake: str  # the CMake switch that builds it
    needs: str  # the toolchain, in words


BACKENDS = {
    "cuda": Backend("cuda", "CUDA", "-DGGML_CUDA=on", "the CUDA toolkit (nvcc)"),
    "hip": Backend("hip", "ROCm", "-DGGML_HIP=on", "ROCm (hipcc)"),
    "vulkan": Backend("vulkan", "Vulkan", "-DGGML_VULKAN=on", "the Vulkan headers, glslc and the SPIR-V headers"),
    "metal": Backend("metal", "Metal", "-DGGML_METAL=on", "the Xcode command line tools"),
    "sycl": Backend(
        "sycl", "SYCL", "-DGGML_SYCL=on -DCMAKE_C_COMPILER=icx -DCMAKE_CXX_COMPILER=icpx", "Intel oneAPI (icx/icpx)"
    ),
    "opencl": Backend("opencl", "OpenCL", "-DGGML_OPENCL=on", "the Adreno OpenCL SDK"),
}
ALIASES = {"rocm": "hip"}
RPC = "-DGGML_RPC=on"  # every build: scale-out across machines uses llama.cpp's RPC backend

# ggml backends (device-name prefixes) that can drive each GPU vendor
GPU_BACKENDS = {
    "nvidia": ["CUDA", "Vulkan"],
    "amd": ["ROCm", "HIP", "Vulkan"],
    "intel": ["SYCL", "Vulkan"],
    "apple": ["Metal", "MTL"],
    "qualcomm": ["OpenCL", "Vulkan"],
}
# gfx targets ROCm supports; other AMD GPUs (most iGPUs) run through Vulkan
ROCM_TARGETS = {"gfx908", "gfx90a", "gfx942", "gfx1030", "gfx1100", "gfx1101", "gfx1102", "gfx1200", "gfx1201"}
PREFERRED = {"nvidia": "cuda", "apple": "metal", "qualcomm": "opencl"}


def preferred(gpu: GPU, system: str) -> Backend:
    """The fastest backend for this GPU, toolchains aside."""
    if gpu.vendor == "amd" and system == "Linux" and gpu.compute_capability in ROCM_TARGETS:
        return BACKENDS["hip"]
    return BACKENDS[PREFERRED.get(gpu.vendor, "vulkan")]


def cmake_args(backend: Backend, gpus: list[GPU]) -> str:
    """CMAKE_ARGS for a build of `backend` for these GPUs: CUDA and HIP compile kernels only for the
    cards present (minutes instead of most of an hour), every build gets RPC."""
    flags = [backend.cmake]
    if backend.name == "cuda":
        archs = sorted(
            {g.compute_capability.replace(".", "") for g in gpus if g.vendor == "nvidia" and g.compute_capability}
        )
        if archs:
            flags.append(f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(archs)}")
    if backend.name == "hip":
        targets = sorted(
            {g.compute_capability for g in gpus if g.vendor == "amd" and g.compute_capability in ROCM_TARGETS}
        )
        if targets:
            flags.append(f"-DGPU_TARGETS={','.join(targets)}")
    return " ".join(flags + [RPC])


def install_command(flags: str, system: str) -> str:
    pip = "pip install --force-reinstall --no-cache-dir llama-cpp-python"
    if system == "Windows":
        return f'$env:CMAKE_ARGS="{flags}"; {pip}'
    return f'CMAKE_ARGS="{flags}" {pip}'
