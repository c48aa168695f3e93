"""Spread a model's layers over this machine and its RPC workers, in proportion to the memory each
offers, and estimate the speed with the network's share counted.

llama.cpp keeps the first layers (and the token embeddings) on this machine's CPU and gives the last
`n_gpu_layers` to its devices in order, each a share given by `tensor_split`: the workers' devices
first, then local GPUs, as llama-server does with --rpc. Memory per layer is its weights plus its
KV cache for the whole context; each device also holds a compute buffer.

Speed (estimates): a single stream runs the layers one device after another, so a token costs what
reading every weight costs (speed.estimate for this machine alone: a worker's memory bandwidth is
not measurable from here and is assumed to match this machine's), plus per worker three round
trips (input, compute, output) and the activations both ways over the measured link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .. import fit
from ..errors import InsufficientMemory
from ..hardware.model import GiB, Hardware
from ..speed import estimate as estimate_speed
from .probe import WorkerInfo

WORKER_MARGIN = 0.9  # of a worker's free memory planned for
ASSUMED_LINK_BPS = 117e6  # gigabit Ethernet's payload rate, when the link was not measured
ASSUMED_LATENCY_S = 0.3e-3  # a LAN round trip, when not measured
ROUND_TRIPS_PER_WORKER = 3  # per token: set the input, compute the graph, read the output


@dataclass
class Share:
    """One place layers live: "local" (this machine's CPU) or a worker's device."""

    where: str
    budget: int  # bytes the plan may use there
    layers: int = 0


@dataclass
class SplitPlan:
    endpoints: list[str]
    n_gpu_layers: int  # llama.cpp's count: the output head plus the layers given to the devices
    tensor_split: list[float]  # one share per device: workers' devices, then local GPUs
    shares: list[Share]
    n_ctx: int
    decode_tps: float | None  # estimate, network included; None where this machine's bandwidth is unknown
    local_decode_tps: float | None  # the same model on this machine alone, if it fitted (estimate)
    link: str  # what the estimate assumed about the network
    notes: list[str] = field(default_factory=list)

    def layout(self) -> str:
        return ", ".join(f"{s.where}: {s.layers}" for s in self.shares)


def device_names(hw: Hardware, workers: list[WorkerInfo]) -> list[str]:
    """The devices a split model's layers may go to, in llama.cpp's order: the workers', then local GPUs."""
    return [f"{w.endpoint}#{d.index}" if len(w.devices) > 1 else w.endpoint for w in workers for d in w.devices] + [
        g.name for g in hw.usable_gpus
    ]


def _per_layer(shape: fit.ModelShape, n_ctx: int, n_parallel: int) -> int:
    total_ctx = -(-n_ctx * n_parallel // 256) * 256
    return int(shape.layer_bytes + shape.kv_bytes_per_token() / shape.layers * total_ctx)


def plan_split(
    shape: fit.ModelShape,
    hw: Hardware,
    workers: list[WorkerInfo],
    *,
    n_ctx: int,
    n_parallel: int = 1,
    gpu_layers: int | None = None,
    tensor_split: Sequence[float] | None = None,
) -> SplitPlan:
    """Layers per place in proportion to memory (or `gpu_layers` of them on the devices, split by
    memory, or by the user's `tensor_split` shares as llama.cpp deals them), refusing when even
    everything together is too small or a share is more than its device holds."""
    per_layer = _per_layer(shape, n_ctx, n_parallel)
    local_fixed = shape.embed_bytes + shape.touched_compute_bytes() + shape.runtime_bytes()
    local = Share("local", max(int(hw.memory.available * fit.RAM_MARGIN) - local_fixed, 0))
    budgets = [max(int(d.free * WORKER_MARGIN) - shape.compute_bytes(), 0) for w in workers for d in w.devices]
    budgets += [fit._gpu_budget([g], hw) - shape.compute_bytes() for g in hw.usable_gpus]
    devices = [Share(name, budget) for name, budget in zip(device_names(hw, workers), budgets, strict=True)]
    capacity = {id(s): s.budget // per_layer for s in [local, *devices]}
    if sum(capacity.values()) < shape.layers:
        together = (local.budget + sum(d.budget for d in devices)) / GiB
        raise InsufficientMemory(
            f"{shape.name} needs about {shape.layers * per_layer / GiB:.1f} GiB for its layers at context {n_ctx}; "
            f"this machine and the workers together offer {together:.1f} GiB.",
            "Add a worker, use a smaller quantisation, or lower --ctx.",
        )
    if gpu_layers is None or gpu_layers < 0:
        _proportional([local, *devices], shape.layers, capacity)
    else:  # llama.cpp's count: the output head first, then layers from the last one down
        _proportional(devices, min(max(gpu_layers - 1, 0), shape.layers), capacity)
        local.layers = shape.layers - sum(d.layers for d in devices)
        if local.layers > capacity[id(local)]:
            raise InsufficientMemory(
                f"With --gpu-layers {gpu_layers}, the {local.layers} layers left here need "
                f"{local.layers * per_layer / GiB:.1f} GiB; {local.budget / GiB:.1f} GiB is free.",
                "Raise --gpu-layers or leave it out so the plan decides.",
            )
    offloaded = sum(d.layers for d in devices)
    if tensor_split:
        weights = _deal(devices, offloaded, fit.check_split(tensor_split, [d.where for d in devices]), shape)
        for d in devices:
            if d.layers > capacity[id(d)]:
                raise InsufficientMemory(
                    f"--tensor-split puts {d.layers} layers on {d.where}, which has room for "
                    f"{capacity[id(d)]} at context {n_ctx}.",
                    "Give it a smaller share, or leave out --tensor-split to split by memory.",
                )
    else:  # llama.cpp offloads the output head with the last layer: it goes to the last device used
        weights = [float(d.layers) for d in devices]
        if offloaded:
            weights[max(i for i, d in enumerate(devices) if d.layers)] += 1
    decode, alone, link = _decode_tps(shape, hw, workers, devices[: sum(len(w.devices) for w in workers)])
    return SplitPlan(
        [w.endpoint for w in workers],
        offloaded + 1 if offloaded else 0,
        [w / max(sum(weights), 1) for w in weights],
        [local, *devices],
        n_ctx,
        decode,
        alone,
        link,
    )


def _deal(devices: list[Share], offloaded: int, shares: list[float], shape: fit.ModelShape) -> list[float]:
    """Give the devices the layers llama.cpp gives them for these shares (the head on the last one
    used); the shares go to llama.cpp as they are."""
    counts = fit.layers_per_device(shares, offloaded + 1, shape.layers) if offloaded else [0] * len(devices)
    if offloaded:
        counts[max(i for i, n in enumerate(counts) if n)] -= 1  # the output head is not a layer
    for d, n in zip(devices, counts, strict=False):
        d.layers = n
    return shares


def _proportional(shares: list[Share], layers: int, capacity: dict[int, int]) -> None:
    """Largest-remainder split of `layers` by budget, never past a share's capacity."""
    left = layers
    open_ = [s for s in shares if capacity[id(s)] > 0]
    while left and open_:
        budget = sum(s.budget for s in open_)
        exact = {id(s): left * s.budget / budget for s in open_}
        for s in open_:
            s.layers += min(int(exact[id(s)]), capacity[id(s)] - s.layers)
        left = layers - sum(s.layers for s in shares)
        for s in sorted(open_, key=lambda s: exact[id(s)] - int(exact[id(s)]), reverse=True):
            if left and s.layers < capacity[id(s)]:
                s.layers += 1
                left -= 1
        open_ = [s for s in open_ if s.layers < capacity[id(s)]]


def _decode_tps(
    shape: fit.ModelShape, hw: Hardware, workers: list[WorkerInfo], remote: list[Share]
) -> tuple[float | None, float | None, str]:
    """(split, this machine alone) decode tokens/s and what was assumed. The same bytes are read
    either way, so the split costs what this machine alone would, plus the network."""
    alone = estimate_speed(shape, hw, [], 0).decode_tps
    measured = all(w.bandwidth_bps for w in workers)
    bandwidth = min((w.bandwidth_bps or ASSUMED_LINK_BPS for w in workers), default=ASSUMED_LINK_BPS)
    latency = max((w.latency_s for w in workers), default=ASSUMED_LATENCY_S) or ASSUMED_LATENCY_S
    activations = 2 * 4 * shape.embedding  # one token's hidden state out and back, f32
    network_s = sum(1 for s in remote if s.layers) * (ROUND_TRIPS_PER_WORKER * latency + activations / bandwidth)
    link = (
        f"link {'measured' if measured else 'assumed'}: {bandwidth / 1e6:.0f} MB/s, "
        f"{latency * 1e3:.2f} ms round trip; workers assumed to read memory as fast as this machine"
    )
    return (None if alone is None else 1.0 / (1.0 / alone + network_s)), alone, link
