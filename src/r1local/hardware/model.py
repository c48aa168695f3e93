"""What detection found, as plain dataclasses (their asdict() is the `r1local hw --json` schema)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

GiB = 1024**3


@dataclass
class CPU:
    model: str
    arch: str  # "x86_64" or "arm64"
    physical_cores: int
    logical_cores: int
    performance_cores: int | None = None  # Apple Silicon P-cores, Intel hybrid P-cores when known
    features: list[str] = field(default_factory=list)  # llama.cpp-relevant ISA features, upper case
    core_types: list[str] = field(default_factory=list)  # ARM cores by name, big first: ["Cortex-A76", "Cortex-A55"]

    @property
    def threads(self) -> int:
        """Decode threads: hyper-threads and efficiency cores slow llama.cpp down."""
        return self.performance_cores or self.physical_cores


@dataclass
class Memory:
    total: int  # bytes of RAM the machine has
    available: int  # bytes free for a new process now (respecting the container limit)
    cgroup_limit: int | None = None  # container memory limit, when one applies

    @property
    def usable_total(self) -> int:
        return min(self.total, self.cgroup_limit) if self.cgroup_limit else self.total


@dataclass
class GPU:
    name: str
    vendor: str  # nvidia | amd | intel | apple | qualcomm
    integrated: bool  # shares system RAM (iGPU, Apple unified memory)
    vram_total: int | None = None  # bytes; for integrated GPUs the share it may use
    vram_free: int | None = None
    driver: str | None = None
    compute_capability: str | None = None  # NVIDIA "8.9"; AMD gfx target "gfx1103"
    bandwidth_gbs: float | None = None  # memory bandwidth, GB/s
    pci_id: str | None = None  # "10de:2860"
    source: str = ""  # nvml | nvidia-smi | sysfs | sysctl | cim


@dataclass
class NPU:
    name: str
    vendor: str  # intel | amd | qualcomm | apple
    generation: str | None = None
    driver: str | None = None
    pci_id: str | None = None
    source: str = ""


@dataclass
class GGMLDevice:
    name: str  # "CUDA0", "Vulkan0", "Metal", "CPU"
    description: str
    type: str  # cpu | gpu | igpu | accel
    memory_free: int | None = None
    memory_total: int | None = None


@dataclass
class LlamaBuild:
    version: str | None
    system_info: str  # llama_print_system_info() as printed
    gpu_offload: bool
    backends: dict[str, dict[str, str]] = field(default_factory=dict)  # {"CUDA": {"ARCHS": "890"}, "CPU": {...}}
    devices: list[GGMLDevice] = field(default_factory=list)
    registries: list[str] = field(default_factory=list)  # ggml backends compiled in: "CPU", "Vulkan", "RPC"
    shipped: list[str] = field(default_factory=list)  # GPU backend libraries shipped, registered or not
    vulkan_drivers: list[str] | None = None  # Vulkan ICD files found (None: not looked for)

    def has(self, backend: str) -> bool:
        """True when the build carries a backend ("CUDA", "Vulkan", "Metal", "ROCm"...)."""
        b = backend.lower()
        return any(k.lower().startswith(b) for k in [*self.backends, *self.registries]) or any(
            d.name.lower().startswith(b) for d in self.devices
        )

    def idle_gpu_backends(self) -> list[str]:
        """GPU backends compiled in that found no device (no driver, or the device is hidden)."""
        return [
            r
            for r in dict.fromkeys([*self.registries, *self.shipped])
            if r not in ("CPU", "RPC", "BLAS")
            and not any(d.name.lower().startswith(r.lower()) and d.type != "cpu" for d in self.devices)
        ]

    def cpu_fallback_note(self) -> str | None:
        """One line when a GPU build runs on the CPU because it found no GPU."""
        idle = self.idle_gpu_backends()
        if not idle or any(d.type in ("gpu", "igpu") for d in self.devices):
            return None
        cause = (
            "no Vulkan driver is installed: no ICD file in /usr/share/vulkan/icd.d; install the GPU's "
            "Vulkan driver, such as mesa-vulkan-drivers"
            if "Vulkan" in idle and self.vulkan_drivers == []
            else "check the GPU driver; `r1local hw` shows what was found"
        )
        return (
            f"this llama.cpp build has {' and '.join(idle)} but found no {idle[0]} device: running on the CPU ({cause})"
        )


@dataclass
class OpenVINODevice:
    name: str  # "CPU", "GPU.0", "NPU"
    full_name: str  # "Intel(R) AI Boost"


@dataclass
class OpenVINOInfo:
    version: str | None
    devices: list[OpenVINODevice] = field(default_factory=list)


@dataclass
class Verdict:
    device: str  # the GPU/NPU name
    kind: str  # gpu | npu
    usable: bool
    status: str  # "used by this build" | "present, not usable by this build"
    why: str
    next_step: str | None = None
    ggml_device: str | None = None  # the llama.cpp device that drives it ("Vulkan0"), when usable


@dataclass
class Hardware:
    system: str  # Linux | Darwin | Windows
    release: str
    cpu: CPU
    memory: Memory
    gpus: list[GPU] = field(default_factory=list)
    npus: list[NPU] = field(default_factory=list)
    build: LlamaBuild | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    openvino: OpenVINOInfo | None = None  # None: the OpenVINO engine is not installed
    openvino_verdicts: list[Verdict] = field(default_factory=list)  # CPU, Intel GPUs and NPUs
    cpu_bandwidth_gbs: float | None = None  # RAM bandwidth the decode threads can use, GB/s; None: unknown
    bandwidth_source: str | None = None  # "measured" (this machine's copy probe) | "published" (its CPU's platform)
    memory_kind: str | None = None  # the memory the CPU's name implies: "LPDDR5X-8533, 128-bit"
    memory_peak_gbs: float | None = None  # that memory's peak bandwidth, GB/s (what an iGPU can use)

    def _used(self) -> list[tuple[GPU, str]]:
        """(GPU, its llama.cpp device) for each GPU the build drives, in the build's device order."""
        gpu_verdicts = [v for v in self.verdicts if v.kind == "gpu"]
        order = [d.name for d in self.build.devices] if self.build else []
        used = [(g, v.ggml_device or "") for g, v in zip(self.gpus, gpu_verdicts, strict=False) if v.usable]
        return sorted(used, key=lambda gd: order.index(gd[1]) if gd[1] in order else len(order))

    @property
    def usable_gpus(self) -> list[GPU]:
        """GPUs the llama.cpp build drives, in its device order (the order of a tensor split)."""
        return [g for g, _ in self._used()]

    def offload_devices(self) -> list[str]:
        """The llama.cpp devices of usable_gpus, in the same order ("CUDA0", "Vulkan0")."""
        return [d for _, d in self._used()]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cpu"]["threads"] = self.cpu.threads
        d["memory"]["usable_total"] = self.memory.usable_total
        return d
