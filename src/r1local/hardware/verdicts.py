"""For each GPU and NPU: is it used by the installed llama.cpp build, and if not, why and what to do."""

from __future__ import annotations

from .. import config
from .backends import GPU_BACKENDS, cmake_args, install_command, preferred
from .model import GPU, NPU, GGMLDevice, LlamaBuild, OpenVINOInfo, Verdict
from .openvino import upstream_step

USED, NOT_USABLE = "used by this build", "present, not usable by this build"

# NPU vendor -> (ggml backends that drive it, why not, what would be needed)
NPU_BACKENDS = {
    "intel": (
        ["OpenVINO"],
        "llama.cpp reaches the Intel NPU only through its OpenVINO backend, which llama-cpp-python does not build",
        "use the iGPU (Vulkan/SYCL build) instead",
    ),
    "amd": (
        [],
        "llama.cpp has no backend for AMD XDNA NPUs",
        "AMD's Ryzen AI software (ONNX Runtime) runs models there, outside llama.cpp; use the iGPU (Vulkan build) instead",
    ),
    "qualcomm": (
        ["HTP", "Hexagon"],
        "llama.cpp's Hexagon backend is not in this build",
        "build llama.cpp with -DGGML_HEXAGON=on (needs Qualcomm's Hexagon SDK)",
    ),
    "apple": ([], "llama.cpp does not use the Neural Engine", "nothing to do: it runs on the GPU through Metal"),
}


GENERIC_WORDS = {"nvidia", "geforce", "amd", "radeon", "intel", "apple", "graphics", "gpu", "laptop", "(tm)", "(r)"}


def _claim(gpu: GPU, build: LlamaBuild, backends: list[str], taken: set[str]) -> GGMLDevice | None:
    """The ggml device that drives this GPU: one whose description names it, else the first free
    device of the vendor's backends of the same kind (integrated or not)."""
    prefixes = tuple(b.lower() for b in backends)
    free = [
        d
        for d in build.devices
        if d.type in ("gpu", "igpu") and d.name.lower().startswith(prefixes) and d.name not in taken
    ]
    words = set(gpu.name.lower().replace("(", " (").split()) - GENERIC_WORDS
    named = [d for d in free if words and words <= set(d.description.lower().replace("(", " (").split())]
    same_kind = [d for d in free if (d.type == "igpu") == gpu.integrated or gpu.vendor == "apple"]
    found = next(iter(named or same_kind), None)
    if found:
        taken.add(found.name)
    return found


def _next_step(gpu: GPU, system: str) -> tuple[str, str]:
    """(backend, what to run) that would let llama.cpp use this GPU."""
    backend = preferred(gpu, system)
    by_hand = install_command(cmake_args(backend, [gpu]), system)
    return (
        backend.label,
        f"r1local accelerate  (builds the {backend.label} backend, needs {backend.needs}; by hand: {by_hand})",
    )


def _claims(gpus: list[GPU], build: LlamaBuild | None) -> dict[int, GGMLDevice | None]:
    """GPU index -> the ggml device that drives it (GPUs found through that list drive themselves)."""
    taken: set[str] = set()  # ggml devices already matched to a GPU
    # discrete GPUs first: llama.cpp's Vulkan backend skips integrated GPUs when a discrete one is present
    order = sorted(range(len(gpus)), key=lambda i: gpus[i].integrated)
    return {
        i: _claim(gpus[i], build, GPU_BACKENDS.get(gpus[i].vendor, ["Vulkan"]), taken)
        if build and not gpus[i].source.startswith(BUILD_SOURCE)
        else None
        for i in order
    }


BUILD_SOURCE = "ggml "  # GPU.source of GPUs known only from the build's device list: "ggml Vulkan0"
DEVICE_VENDORS = {"cuda": "nvidia", "rocm": "amd", "hip": "amd", "sycl": "intel", "metal": "apple", "mtl": "apple"}


def build_only_gpus(gpus: list[GPU], build: LlamaBuild | None) -> list[GPU]:
    """GPU devices the llama.cpp build drives that detection did not find, such as Mesa's software
    Vulkan device (lavapipe) or a GPU without driver files in a container: the build's own device
    list is the proof that llama.cpp can use them."""
    if build is None:
        return []
    taken = {d.name for d in _claims(gpus, build).values() if d}
    return [
        GPU(
            name=d.description or d.name,
            vendor=next((v for k, v in DEVICE_VENDORS.items() if d.name.lower().startswith(k)), "unknown"),
            integrated=d.type == "igpu",
            vram_total=d.memory_total,
            vram_free=d.memory_free,
            source=BUILD_SOURCE + d.name,
        )
        for d in build.devices
        if d.type in ("gpu", "igpu") and d.name not in taken
    ]


def gpu_verdicts(gpus: list[GPU], build: LlamaBuild | None, system: str) -> list[Verdict]:
    """One verdict per GPU, in the order of `gpus`."""
    claimed = _claims(gpus, build)
    verdicts = []
    for i, gpu in enumerate(gpus):
        backend, step = _next_step(gpu, system)
        wanted = GPU_BACKENDS.get(gpu.vendor, ["Vulkan"])
        if build is None:
            verdicts.append(Verdict(gpu.name, "gpu", False, NOT_USABLE, "llama-cpp-python is not installed", step))
        elif gpu.source.startswith(BUILD_SOURCE):
            device = gpu.source.removeprefix(BUILD_SOURCE)
            verdicts.append(
                Verdict(gpu.name, "gpu", True, USED, f"llama.cpp drives it as {device}", ggml_device=device)
            )
        elif device_of := claimed[i]:
            verdicts.append(
                Verdict(
                    gpu.name, "gpu", True, USED, f"llama.cpp drives it as {device_of.name}", ggml_device=device_of.name
                )
            )
        elif gpu.integrated and any(claimed.values()):
            verdicts.append(
                Verdict(
                    gpu.name,
                    "gpu",
                    False,
                    NOT_USABLE,
                    "llama.cpp runs on the discrete GPU and leaves integrated ones alone",
                )
            )
        elif any(build.has(b) for b in wanted):
            have = next(b for b in wanted if build.has(b))
            verdicts.append(
                Verdict(
                    gpu.name,
                    "gpu",
                    False,
                    NOT_USABLE,
                    f"the build has {have} but found no {have} device for it",
                    "check the GPU driver "
                    + ("(nvidia-smi must work)" if gpu.vendor == "nvidia" else "and its runtime (vulkaninfo)"),
                )
            )
        else:
            only = ", ".join(sorted(build.backends)) or "CPU"
            verdicts.append(
                Verdict(
                    gpu.name,
                    "gpu",
                    False,
                    NOT_USABLE,
                    f"this llama-cpp-python has no {backend} backend (it has {only})",
                    step,
                )
            )
    return verdicts


def npu_verdicts(npus: list[NPU], build: LlamaBuild | None, openvino: OpenVINOInfo | None = None) -> list[Verdict]:
    """Whether r1local runs models on each NPU: Intel's through the OpenVINO engine, AMD's and
    Qualcomm's through their vendors' servers fronted as upstreams, others not at all."""
    verdicts = []
    for npu in npus:
        backends, why, step = NPU_BACKENDS.get(
            npu.vendor, ([], "llama.cpp has no backend for this NPU", "nothing r1local can use")
        )
        step = upstream_step(npu) or step
        if build is not None and any(build.has(b) for b in backends):
            verdicts.append(Verdict(npu.name, "npu", True, USED, f"the build has the {backends[0]} backend"))
        elif npu.vendor == "intel":
            verdicts.append(_intel_npu(npu, openvino))
        else:
            verdicts.append(Verdict(npu.name, "npu", False, NOT_USABLE, why, step))
    return verdicts


def _intel_npu(npu: NPU, openvino: OpenVINOInfo | None) -> Verdict:
    if openvino is None:
        return Verdict(
            npu.name,
            "npu",
            False,
            "present, the OpenVINO engine is not installed",
            "r1local runs R1 distills on the Intel NPU through OpenVINO GenAI",
            config.OPENVINO_EXTRA,
        )
    if any(d.name.split(".")[0] == "NPU" for d in openvino.devices):
        return Verdict(
            npu.name,
            "npu",
            True,
            "used by the OpenVINO engine",
            "OpenVINO lists it; models made for the NPU run there (r1local pull r1:1.5b-npu)",
        )
    return Verdict(
        npu.name,
        "npu",
        False,
        "present, OpenVINO does not see it",
        "OpenVINO lists no NPU device",
        "install Intel's NPU driver (intel_vpu + Level Zero)",
    )
