"""How fast a load plan runs (estimates): decode is bound by memory bandwidth, prompts by compute.

Generating one token reads every offloaded layer's weights (and its slice of the KV cache) once.
llama.cpp's layer split runs the devices one after the other, so a token costs the sum over
devices of (their share of the bytes / their bandwidth), plus the CPU's share at RAM bandwidth,
plus a fixed cost per layer (kernel launches on a GPU, thread synchronisation on the CPU). The GPU
constants are fitted to published llama.cpp measurements (docs/speed-accuracy.md; Metal's
per-layer cost is about four times CUDA's), the CPU ones to scripts/measure_fit_accuracy.py. No
estimate exceeds the ceiling (`Speed.ceiling_tps`), the speed at which every byte streams at its
device's full bandwidth; where a bandwidth is unknown the estimate is None, never a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .hardware import tables
from .hardware.model import GPU, Hardware

if TYPE_CHECKING:
    from .fit import ModelShape

# Fraction of peak bandwidth llama.cpp's decode reaches: of a published peak on the CPU side (a
# dual-channel desktop, a Raspberry Pi), of this machine's measured copy rate, of a GPU's peak
# (capped by tables.GPU_ATTAINABLE_GBS where a chip measurably reaches less).
CPU_BW_EFF, MEASURED_BW_EFF, GPU_BW_EFF = 0.55, 0.8, 0.85
TOKEN_OVERHEAD_S = 0.4e-3  # graph build + sampling per decoded token
CPU_LAYER_OVERHEAD_S = 15e-6  # CPU thread synchronisation per layer per token
GPU_LAYER_OVERHEAD_S = {"apple": 125e-6, "nvidia": 30e-6}  # kernel launches per layer per token
GPU_LAYER_OVERHEAD_OTHER_S = 60e-6  # Vulkan, ROCm, SYCL: between the two
CPU_GFLOPS_PER_CORE = {"AVX512": 90.0, "AVX2": 45.0, "I8MM": 70.0, "DOTPROD": 45.0, "NEON": 20.0}
CPU_GFLOPS_DEFAULT = 15.0
PROMPT_GEMM_GAIN = 1.5  # batched CPU matmuls reuse each loaded weight across the batch (measured)
PROMPT_TOKEN_OVERHEAD_S = 30e-6  # per prompt token, outside the matmuls (measured: tiny model)
GPU_FLOPS_EFF = 0.35


@dataclass(frozen=True)
class Share:
    """One device's part of a token: the bytes it reads, its bandwidth, its layers."""

    device: str
    read_bytes: float
    bandwidth_gbs: float | None
    efficiency: float
    layers: float
    layer_overhead_s: float
    tflops: float | None  # prompt compute (TFLOPS); the CPU's comes from its cores


@dataclass(frozen=True)
class Speed:
    decode_tps: float | None  # estimated tokens/s while generating; None: a bandwidth is unknown
    prompt_tps: float | None  # estimated tokens/s while reading a prompt
    ceiling_tps: float | None  # every byte at full bandwidth: no estimate may exceed it


def gpu_bandwidth(gpu: GPU, hw: Hardware) -> float | None:
    """A GPU's memory bandwidth: detected, else published, else (integrated) the RAM's."""
    spec = tables.lookup(tables.GPU_SPECS, gpu.name)
    ram = (hw.memory_peak_gbs or hw.cpu_bandwidth_gbs) if gpu.integrated else None
    return gpu.bandwidth_gbs or (spec[0] if spec else None) or ram


def gpu_efficiency(gpu: GPU, bandwidth: float | None) -> float:
    """The share of `bandwidth` decode reaches: GPU_BW_EFF, less where a chip measurably reaches less."""
    attainable = tables.lookup(tables.GPU_ATTAINABLE_GBS, gpu.name)
    return min(GPU_BW_EFF, attainable / bandwidth) if attainable and bandwidth else GPU_BW_EFF


def layer_split(gpus: list[GPU], layers: int) -> list[float]:
    """Layers per GPU as llama.cpp's default split gives them: in proportion to free memory."""
    free = [g.vram_free if g.vram_free is not None else g.vram_total or 0 for g in gpus]
    total = sum(free)
    return [layers * f / total for f in free] if total else [layers / len(gpus)] * len(gpus)


def cpu_gflops(hw: Hardware) -> float:
    per_core = max((v for k, v in CPU_GFLOPS_PER_CORE.items() if k in hw.cpu.features), default=CPU_GFLOPS_DEFAULT)
    return per_core * hw.cpu.threads


def shares(shape: ModelShape, hw: Hardware, gpus: list[GPU], n_gpu: int, n_past: int) -> list[Share]:
    """The CPU's share of a token, then each GPU's (layers split by free memory, the head on the last)."""
    on_gpu = min(n_gpu, shape.layers) if gpus else 0
    head_on_gpu = bool(gpus) and n_gpu > shape.layers
    per_layer = shape.layer_bytes + shape.kv_bytes_per_token() / shape.layers * n_past
    cpu_layers = shape.layers - on_gpu
    cpu_eff = MEASURED_BW_EFF if hw.bandwidth_source == "measured" else CPU_BW_EFF
    out = [
        Share(
            "CPU",
            cpu_layers * per_layer + (0 if head_on_gpu else shape.output_bytes),
            hw.cpu_bandwidth_gbs,
            cpu_eff,
            cpu_layers,
            CPU_LAYER_OVERHEAD_S,
            None,
        )
    ]
    split = layer_split(gpus, on_gpu) if on_gpu else []
    for i, (g, layers) in enumerate(zip(gpus, split, strict=False)):
        bw = gpu_bandwidth(g, hw)
        spec = tables.lookup(tables.GPU_SPECS, g.name)
        head = shape.output_bytes if head_on_gpu and i == len(gpus) - 1 else 0
        out.append(
            Share(
                g.name,
                layers * per_layer + head,
                bw,
                gpu_efficiency(g, bw),
                layers,
                GPU_LAYER_OVERHEAD_S.get(g.vendor, GPU_LAYER_OVERHEAD_OTHER_S),
                spec[1] if spec else (bw / 20 if bw else None),
            )
        )
    return out


def estimate(shape: ModelShape, hw: Hardware, gpus: list[GPU], n_gpu: int, n_past: int = 512) -> Speed:
    """Decode and prompt tokens/s of `shape` with n_gpu layers (llama.cpp's count) on `gpus`."""
    parts = [s for s in shares(shape, hw, gpus, n_gpu, n_past) if s.read_bytes or s.layers]
    cpu = parts[0] if parts and parts[0].device == "CPU" else None
    total_read = sum(s.read_bytes for s in parts) or 1.0
    # 2 flops per multiplied weight; token embeddings are looked up, not multiplied (unless tied)
    flops = 2.0 * (shape.params - (0 if shape.tied_output else shape.vocab * shape.embedding))
    # a prompt runs the output head once, for its last token: per token only the layers count
    table = shape.vocab * shape.embedding
    prompt_flops = 2.0 * max(shape.params - table * (1 if shape.tied_output else 2), 0)

    decode_s, prompt_s, ceiling_s = TOKEN_OVERHEAD_S, PROMPT_TOKEN_OVERHEAD_S, 0.0
    known = True
    for s in parts:
        share = s.read_bytes / total_read
        if s.bandwidth_gbs:
            stream = s.read_bytes / (s.bandwidth_gbs * 1e9)
            ceiling_s += stream
        else:
            known, stream = False, 0.0
        decode_s += s.layers * s.layer_overhead_s
        if s is cpu:
            decode_s += max(stream / s.efficiency, flops * share / (cpu_gflops(hw) * 1e9))
            prompt_s += prompt_flops * share / (cpu_gflops(hw) * PROMPT_GEMM_GAIN * 1e9)
        else:
            decode_s += stream / s.efficiency
            prompt_s += prompt_flops * share / (s.tflops * 1e12 * GPU_FLOPS_EFF) if s.tflops else math.inf
    prompt = None if math.isinf(prompt_s) else 1.0 / prompt_s
    if not known:
        return Speed(None, prompt, None)
    return Speed(1.0 / decode_s, prompt, 1.0 / ceiling_s)
