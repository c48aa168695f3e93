"""Hardware detection: everything read through a Probe, so a snapshot replays any machine.

hw = detect()                                   # this machine (cached)
hw = detect(ReplayProbe.load("laptop.json"))    # a recorded or hand-written machine
"""

from __future__ import annotations

import functools

from .. import config
from . import bandwidth, windows
from .cpu import detect_cpu
from .gpus import apple_gpu, detect_drm, detect_nvidia, windows_gpus
from .llama_build import detect_build
from .memory import detect_memory
from .model import CPU, GPU, NPU, GGMLDevice, GiB, Hardware, LlamaBuild, Memory, Verdict
from .npus import apple_npu, linux_npus, windows_npus
from .openvino import detect_openvino, openvino_verdicts
from .probe import FORMAT, LiveProbe, Probe, RecordingProbe, ReplayProbe
from .verdicts import build_only_gpus, gpu_verdicts, npu_verdicts

PER_CORE_BANDWIDTH = 20.0  # GB/s one x86 core streams: a few cores cannot saturate a server's channels

__all__ = [
    "CPU",
    "FORMAT",
    "GPU",
    "NPU",
    "GGMLDevice",
    "Hardware",
    "LiveProbe",
    "LlamaBuild",
    "Memory",
    "Probe",
    "RecordingProbe",
    "ReplayProbe",
    "Verdict",
    "detect",
    "detect_live",
    "ram_bandwidth",
    "detect_now",
]


def ram_bandwidth(probe: Probe, cpu: CPU, memory: Memory) -> dict:
    """The Hardware fields about RAM bandwidth. What the decode threads can use comes from the
    probe's measurement (once per machine, cached in R1LOCAL_HOME, recorded in snapshots), else
    from the platform the CPU's name implies, which a few x86 cores cannot saturate."""
    platform = bandwidth.published(cpu.model, cpu.core_types)
    fields = {
        "memory_kind": platform and platform.memory,
        "memory_peak_gbs": platform and platform.gbs,
        "cpu_bandwidth_gbs": None,
        "bandwidth_source": None,
    }
    usable = (
        None
        if platform is None
        else (min(platform.gbs, cpu.threads * PER_CORE_BANDWIDTH) if cpu.arch == "x86_64" else platform.gbs)
    )
    machine = f"{cpu.model} | {cpu.logical_cores} CPUs | {memory.total // GiB} GiB"
    budget = min(bandwidth.PROBE_BYTES, memory.available // 8)  # a small board keeps its RAM
    measured = probe.call(
        "memory.bandwidth",
        lambda: bandwidth.cached_measure(config.home() / "bandwidth.json", machine, cpu.threads, budget, usable),
    )
    if isinstance(measured, dict) and isinstance(measured.get("gbs"), (int, float)) and measured["gbs"] > 0:
        return {**fields, "cpu_bandwidth_gbs": float(measured["gbs"]), "bandwidth_source": "measured"}
    if platform is None:
        return fields
    return {**fields, "cpu_bandwidth_gbs": usable, "bandwidth_source": "published"}


def detect(probe: Probe | None = None) -> Hardware:
    probe = probe or LiveProbe()
    plat = probe.platform()
    system = plat["system"]
    cim = windows.query(probe) if system == "Windows" else {}
    cpu = detect_cpu(probe, plat, cim)
    memory = detect_memory(probe)
    gpus: list[GPU] = detect_nvidia(probe) if system != "Darwin" else []
    npus: list[NPU] = []
    skip = {"nvidia"} if gpus else set()
    if system == "Linux":
        gpus += detect_drm(probe, memory.total, skip)
        npus = linux_npus(probe)
    elif system == "Windows":
        gpus += windows_gpus(cim, skip)
        npus = windows_npus(cim)
    elif system == "Darwin" and cpu.arch == "arm64":
        chip = cpu.model
        gpus, npus = [apple_gpu(chip, memory.total)], [apple_npu(chip)]
    build = detect_build(probe)
    if build and system == "Darwin":
        # Metal reports the real working-set budget; prefer it to the rule of thumb
        metal = next((d for d in build.devices if d.name.lower().startswith(("metal", "mtl"))), None)
        if metal and metal.memory_total and gpus:
            gpus[0].vram_total, gpus[0].vram_free = metal.memory_total, metal.memory_free
    openvino = detect_openvino(probe)
    gpus += build_only_gpus(gpus, build)
    verdicts = gpu_verdicts(gpus, build, system) + npu_verdicts(npus, build, openvino)
    return Hardware(
        system=system,
        release=plat.get("release", ""),
        cpu=cpu,
        memory=memory,
        gpus=gpus,
        npus=npus,
        build=build,
        verdicts=verdicts,
        openvino=openvino,
        openvino_verdicts=openvino_verdicts(openvino, gpus, npus, config.OPENVINO_EXTRA),
        **ram_bandwidth(probe, cpu, memory),
    )


def detect_now() -> Hardware:
    """This machine as it is now: free RAM and VRAM change as models load and other programs run."""
    return detect(LiveProbe())


@functools.lru_cache(maxsize=1)
def detect_live() -> Hardware:
    """This machine, detected once per process (the engine asks on every model load)."""
    return detect(LiveProbe())
