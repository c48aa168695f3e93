"""Where llama.cpp put a loaded model, read back from what it logs while loading:

    load_tensors: offloaded 3/3 layers to GPU
    load_tensors:      Vulkan0 model buffer size =    10.25 MiB
    load_tensors:   CPU_Mapped model buffer size =    19.00 MiB
    llama_kv_cache:    Vulkan0 KV buffer size =     1.00 MiB
    llama_context:    Vulkan0 compute buffer size =   300.75 MiB

Buffers named after a ggml device (Vulkan0, CUDA1) live in that device's memory; CPU buffers and
the GPU backends' pinned host buffers (CUDA_Host, Vulkan_Host) live in RAM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MiB = 1024**2
BUFFER = re.compile(r"^\w+:\s+(\S+)\s+(model|KV|compute|output|RS) buffer size =\s+([\d.]+) MiB")
OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")


def is_host(buffer: str) -> bool:
    return buffer.upper().startswith("CPU") or buffer.endswith("_Host")


def wanted(line: str) -> bool:
    """Is this log line part of the placement record?"""
    return "buffer size =" in line or "layers to GPU" in line


@dataclass
class Placement:
    offloaded: int = 0  # layers llama.cpp put on GPUs (the output head counts as one, as in n_gpu_layers)
    offloadable: int = 0
    buffers: dict[str, dict[str, int]] = field(default_factory=dict)  # buffer -> {"model": bytes, "KV": ...}

    @classmethod
    def parse(cls, lines: list[str]) -> Placement:
        placed = cls()
        for line in lines:
            if m := OFFLOADED.search(line):
                placed.offloaded, placed.offloadable = int(m.group(1)), int(m.group(2))
            elif m := BUFFER.match(line.strip()):
                kinds = placed.buffers.setdefault(m.group(1), {})
                kinds[m.group(2)] = kinds.get(m.group(2), 0) + int(float(m.group(3)) * MiB)
        return placed

    def on_devices(self) -> dict[str, int]:
        """Bytes per ggml device (host buffers left out)."""
        return {name: sum(kinds.values()) for name, kinds in self.buffers.items() if not is_host(name)}

    @property
    def device_bytes(self) -> int:
        return sum(self.on_devices().values())

    @property
    def host_bytes(self) -> int:
        return sum(sum(k.values()) for name, k in self.buffers.items() if is_host(name))

    def weights_on(self, device: str) -> int:
        return self.buffers.get(device, {}).get("model", 0)
