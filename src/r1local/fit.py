"""Will a model fit on this machine, how should it be loaded, and how fast will it be (estimates).

A model is described by a ModelShape, made from a local GGUF's metadata (`ModelShape.from_gguf`)
or from catalog architecture numbers before download (`ModelShape.from_arch`). `plan()` chooses
n_gpu_layers, the context and threads for a Hardware; choice.py picks among candidates.

Memory (what llama.cpp allocates):
  weights   per-layer tensor bytes + token embeddings (always in RAM) + output head
  KV cache  n_ctx x layers x kv_heads x (key_dim + value_dim) x bytes per element
  compute   the graph's scratch buffer for one micro-batch (logits for n_ubatch tokens dominate)
  runtime   vocabulary tables and ggml contexts
On a GPU all of it is allocated for real. On CPUs with AVX2 or dot-product NEON, llama.cpp copies
4-bit layer weights into an interleaved "repack" buffer. With the file memory-mapped (llama.cpp's
default) their file pages stay mapped beside the copies (1.5B Q4_K_M: 1771 MiB RSS mapped, 1183 MiB
read), so a plan that repacks and fits reads the file into RAM instead (`map_file`); a plan that
does not fit maps it, so the kernel can page. The compute buffer's logits rows for a whole
micro-batch are never written during generation, so only its activations count.
Speed (speed.py): decode is bound by memory bandwidth (every weight is read once per token);
prompt processing by compute (2 flops per parameter per token).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import config
from .errors import UsageError
from .hardware.model import GPU, GiB, Hardware
from .speed import estimate as estimate_speed

MiB = 1024**2
REPACKED = {"Q4_0", "Q4_K", "IQ4_NL"}  # ggml types the CPU backend copies into interleaved layouts
REPACK_SHARE = {"Q4_0": 1.0, "IQ4_NL": 1.0, "Q4_K_S": 0.95, "Q4_K_M": 0.8}  # of layer bytes (measured: Q4_K_M proxy)
KV_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}  # bytes per cache element (config.KV_TYPES)
KV_BLOCK = 32  # elements per q8_0/q4_0 block: a quantised cache needs heads of a multiple of it
N_UBATCH = 512  # the engine's micro-batch (compute buffer scales with it)
RUNTIME = 24 * MiB  # ggml contexts, thread pools (measured: RSS growth of loading a tiny model)
RUNTIME_PER_TOKEN = 170  # bytes of vocabulary tables per vocabulary entry (measured, same way)
ACTIVATION_WIDTH = 24  # touched compute buffer ~ n_ubatch x embedding x this many floats (measured)
GPU_RESERVE = 400 * MiB  # driver context and fragmentation on each GPU
GPU_MARGIN = 0.95  # of free VRAM planned for: other apps' allocations move
RAM_MARGIN = 0.9  # of available RAM planned for: the OS and other programs keep allocating
USEFUL_CTX = 8192  # below this, R1's reasoning gets cut; prefer shrinking offload over context
TILED_LOSING_ROWS = range(8, 16)  # micro-batch rows at which the tiled K-quant matmul loses on AVX2 (measured)


@dataclass(frozen=True)
class ModelShape:
    """The numbers the fit needs about one model file (bytes are tensor bytes in the file)."""

    name: str
    params: int
    layers: int
    kv_heads: int
    key_dim: int
    value_dim: int
    embedding: int
    vocab: int
    trained_ctx: int
    file_bytes: int
    layer_bytes: int  # one layer's weights (the average)
    embed_bytes: int  # token embeddings: llama.cpp keeps them in RAM
    output_bytes: int  # output head + final norm: offloaded with the last layer
    quant: str = ""
    n_heads: int = 0
    tied_output: bool = False  # the output head is the token embedding matrix (read in full per token)
    repack_bytes: int = 0  # layer weights of types llama.cpp's CPU backend repacks (Q4_0, Q4_K, IQ4_NL)

    @classmethod
    def from_gguf(cls, info: Any, name: str | None = None) -> ModelShape:
        """From gguf_meta.read_gguf(path)."""
        layers, _ = info.bytes_per_layer()
        repack = sum(
            t.n_bytes for t in info.tensors if t.layer is not None and t.type_name in REPACKED and len(t.shape) == 2
        )
        by_name = {t.name: t.n_bytes for t in info.tensors}
        embed = by_name.get("token_embd.weight", 0)
        tied = "output.weight" not in by_name
        # Tied: on a GPU, llama.cpp loads token_embd a second time as the output head
        output = by_name.get("output.weight", embed) + by_name.get("output_norm.weight", 0)
        return cls(
            name=name or info.name or info.path.stem,
            params=info.parameter_count,
            layers=info.block_count or len(layers),
            kv_heads=info.head_count_kv or 1,
            key_dim=info.key_length or 0,
            value_dim=info.value_length or 0,
            embedding=info.embedding_length or 0,
            vocab=info.vocab_size or 0,
            trained_ctx=info.context_length or config.DEFAULT_CTX,
            file_bytes=info.file_size,
            layer_bytes=sum(layers.values()) // max(len(layers), 1),
            embed_bytes=embed,
            output_bytes=output,
            quant=info.file_type,
            n_heads=info.head_count or 0,
            tied_output=tied,
            repack_bytes=repack,
        )

    @classmethod
    def from_arch(
        cls,
        name: str,
        *,
        params: int,
        layers: int,
        kv_heads: int,
        head_dim: int,
        embedding: int,
        vocab: int,
        trained_ctx: int,
        file_bytes: int,
        quant: str = "",
        n_heads: int = 0,
    ) -> ModelShape:
        """From catalog numbers before download: the file's bytes are split between the embedding
        tables (vocab x embedding each, at the file's average bytes per weight) and the layers."""
        per_param = file_bytes / params
        table = int(vocab * embedding * per_param)
        layer = int(max(file_bytes - 2 * table, 0) / layers)
        repack = int(layer * layers * REPACK_SHARE.get(quant.upper(), 0.0))
        return cls(
            name,
            params,
            layers,
            kv_heads,
            head_dim,
            head_dim,
            embedding,
            vocab,
            trained_ctx,
            file_bytes,
            layer,
            table,
            table,
            quant,
            n_heads,
            repack_bytes=repack,
        )

    def kv_bytes_per_token(self, kv_type: str = "f16") -> float:
        return self.layers * self.kv_heads * (self.key_dim + self.value_dim) * KV_BYTES[kv_type]

    def kv_quantisable(self) -> bool:
        """llama.cpp refuses a quantised cache whose heads do not split into whole blocks."""
        return self.key_dim % KV_BLOCK == 0 and self.value_dim % KV_BLOCK == 0

    def compute_bytes(self) -> int:
        """llama.cpp's compute buffer (flash attention on): its peak is the output matmul of one
        micro-batch, n_ubatch x (vocab + embedding) floats."""
        return N_UBATCH * 4 * (self.vocab + 2 * self.embedding)

    def touched_compute_bytes(self) -> int:
        """The part of the compute buffer a prompt's layers write (generation asks for one row of logits)."""
        return N_UBATCH * 4 * ACTIVATION_WIDTH * self.embedding

    def runtime_bytes(self) -> int:
        return RUNTIME + RUNTIME_PER_TOKEN * self.vocab


@dataclass
class FitPlan:
    model: str
    n_gpu_layers: int  # as llama.cpp counts: layers + 1 means every layer and the output head
    n_ctx: int  # per sequence
    n_parallel: int
    n_threads: int
    device: str  # "RTX 4060 Laptop GPU", "2x RTX 3090", "CPU"
    gpu_bytes: int  # estimated memory on the GPU(s)
    cpu_bytes: int  # estimated RAM
    decode_tps: float | None  # predicted tokens/s while generating (estimate); None: bandwidth unknown
    prompt_tps: float | None  # predicted tokens/s while reading the prompt (estimate)
    fits: bool
    verdict: str  # "fits on GPU" | "partly on GPU" | "fits in RAM" | "too big"
    reason: str
    gpu_budget: int = 0  # the GPU memory the plan had to work with
    map_file: bool = True  # memory-map the GGUF (False: read it into RAM)
    tiled_matmul: bool = True  # llama.cpp's tiled K-quant matmul (see _tiled_matmul_pays)
    details: dict[str, int] = field(default_factory=dict)  # weights / kv / compute per side
    decode_ceiling_tps: float | None = None  # every byte at full bandwidth: decode_tps never exceeds it
    gpu_devices: list[str] = field(default_factory=list)  # llama.cpp devices offloaded to ("CUDA0", "Vulkan0")
    device_layers: list[int] = field(default_factory=list)  # layers on each of them (the output head counts one)
    tensor_split: list[float] = field(default_factory=list)  # their shares (several GPUs only)
    user_split: tuple[float, ...] | None = None  # the --tensor-split these shares came from, if any
    offload_kv: bool = True  # an offloaded layer's KV cache lives on its GPU
    flash_attn: str = "auto"  # llama.cpp enables it where every device has the kernel; "on" for a quantised V
    kv_type: str = "f16"  # the KV cache's element type, K and V alike
    kv_note: str = ""  # why the default chose a quantised cache
    draft_gpu_layers: int | None = None  # a plan counting a draft model (fit_draft): the draft's GPU layers

    @property
    def n_ctx_total(self) -> int:
        return self.n_ctx * self.n_parallel

    @property
    def all_on_gpu(self) -> bool:
        return self.verdict == "fits on GPU"

    def to_dict(self) -> dict:
        return asdict(self)


def _gpu_budgets(gpus: list[GPU], hw: Hardware) -> list[int]:
    """The memory the plan may use on each GPU."""
    budgets = []
    for g in gpus:
        if g.integrated:
            # shares RAM with the CPU side: whatever RAM is free, up to the driver's share
            share = g.vram_total or hw.memory.usable_total // 2
            budgets.append(min(share, hw.memory.available))
        else:
            free = g.vram_free if g.vram_free is not None else g.vram_total or 0
            budgets.append(max(int(free * GPU_MARGIN) - GPU_RESERVE, 0))
    return budgets


def _gpu_budget(gpus: list[GPU], hw: Hardware) -> int:
    return sum(_gpu_budgets(gpus, hw))


def tensor_split(budgets: list[int]) -> list[float]:
    """Each GPU's share of the offloaded layers: its share of the memory free for the model."""
    total = sum(budgets)
    return [b / total for b in budgets] if total else [1 / len(budgets)] * len(budgets)


def check_split(user_split: Sequence[float], devices: list[str]) -> list[float]:
    """The user's --tensor-split as shares summing to 1: one number per device, in llama.cpp's order."""
    if len(user_split) != len(devices):
        listed = ", ".join(devices) or "none"
        raise UsageError(
            f"--tensor-split gives {len(user_split)} shares for {len(devices)} devices ({listed}).",
            "Give one number per device, in that order, e.g. --tensor-split 3,1.",
        )
    if any(not math.isfinite(x) or x < 0 for x in user_split) or not sum(user_split):
        raise UsageError(
            "--tensor-split takes shares of zero or more, at least one above zero.", "Example: --tensor-split 3,1"
        )
    return [x / sum(user_split) for x in user_split]


def layers_per_device(split: list[float], n_gpu: int, n_layers: int) -> list[int]:
    """How llama.cpp deals the last n_gpu of its n_layers + 1 layers (the output head last) to the
    devices: offloaded layer i goes to the first device whose cumulative share exceeds i / n_gpu."""
    act = min(n_gpu, n_layers + 1)
    bounds = list(itertools.accumulate(split))
    counts = [0] * len(split)
    for i in range(act):
        counts[min(bisect.bisect_right(bounds, i / act * bounds[-1]), len(split) - 1)] += 1
    return counts


def _device_name(gpus: list[GPU]) -> str:
    names = [g.name.replace("NVIDIA ", "").replace("GeForce ", "") for g in gpus]
    if len(names) > 1 and len(set(names)) == 1:
        return f"{len(names)}x {names[0]}"
    return " + ".join(names)


def _repacks(hw: Hardware) -> bool:
    """llama.cpp's CPU backend repacks 4-bit weights where it has interleaved kernels for them."""
    return bool({"AVX2", "DOTPROD"} & set(hw.cpu.features))


def _tiled_matmul_pays(hw: Hardware, n_parallel: int) -> bool:
    """llama.cpp's tiled K-quant matmul takes every micro-batch of 8 or more rows of the K-quant
    weights the CPU does not repack (Q4_K_M's Q6_K tensors on x86). Its AVX2 kernel (the one used
    without AVX-512 VNNI) only pays from about 16 rows. Measured with llama-batched-bench, 1.5B
    Q4_K_M proxy, one Zen 3 thread, aggregate decode tok/s tiled vs not: 8 sequences 11.5 vs 14.7,
    12: 14.5 vs 14.9, 16: 19.2 vs 16.8, 32: 21.4 vs 19.2; a 512-token prompt: +6%. With 8-15
    slots the decode steps sit in its losing range, so such a plan turns it off."""
    features = set(hw.cpu.features)
    avx2_kernel = "AVX2" in features and "AVX512_VNNI" not in features
    return not (avx2_kernel and n_parallel in TILED_LOSING_ROWS)


def _ctx_ladder(shape: ModelShape, desired: int) -> list[int]:
    top = max(min(desired, shape.trained_ctx), 16)
    ladder: list[int] = []
    ctx = top
    while ctx >= config.MIN_CTX or not ladder:
        ladder.append(ctx)
        ctx //= 2
    return ladder


def check_kv_type(shape: ModelShape, kv_type: str) -> None:
    if kv_type not in config.KV_TYPES:
        raise UsageError(f"Unknown KV cache type {kv_type!r}.", f"Choose one of {', '.join(config.KV_TYPES)}.")
    if kv_type != "f16" and not shape.kv_quantisable():
        raise UsageError(
            f"--kv-type {kv_type} needs attention heads whose size is a multiple of {KV_BLOCK}; "
            f"{shape.name}'s are {shape.key_dim}.",
            "Use --kv-type f16 for this model.",
        )


def plan(
    shape: ModelShape,
    hardware: Hardware,
    desired_ctx: int | None = None,
    n_parallel: int = 1,
    gpu_layers: int | None = None,
    user_split: Sequence[float] | None = None,
    kv_type: str | None = None,
) -> FitPlan:
    """Choose how to load `shape` on `hardware`: all layers on the GPU(s) when they fit with margin,
    else as many layers as fit; several GPUs share the layers by their free memory; the context
    from desired_ctx down to config.MIN_CTX; threads = physical (performance) cores. `gpu_layers`
    pins the offloaded layers (the user's --gpu-layers; negative: all) and plans the rest around
    them; `user_split` (--tensor-split) replaces the GPUs' shares. Every number is an estimate.
    `kv_type` None: an f16 cache, unless only a q8_0 one (half the bytes, little loss) lets the
    context fit."""
    if kv_type is not None:
        check_kv_type(shape, kv_type)
        return _plan(shape, hardware, desired_ctx, n_parallel, gpu_layers, user_split, kv_type)
    full = _plan(shape, hardware, desired_ctx, n_parallel, gpu_layers, user_split, "f16")
    wanted_ctx = _ctx_ladder(shape, desired_ctx or config.DEFAULT_CTX)[0]
    if not shape.kv_quantisable() or (full.fits and full.n_ctx >= wanted_ctx):
        return full
    half = _plan(shape, hardware, desired_ctx, n_parallel, gpu_layers, user_split, "q8_0")
    if (half.fits, half.n_ctx) <= (full.fits, full.n_ctx):
        return full
    gained = f"the {half.n_ctx}-token context fit (f16: {full.n_ctx})" if full.fits else "the model fit"
    half.kv_note = f"a q8_0 KV cache (half of f16's bytes) lets {gained}"
    return half


def _plan(
    shape: ModelShape,
    hardware: Hardware,
    desired_ctx: int | None,
    n_parallel: int,
    gpu_layers: int | None,
    user_split: Sequence[float] | None,
    kv_type: str,
    exact_ctx: bool = False,
) -> FitPlan:
    desired = desired_ctx or config.DEFAULT_CTX
    gpus = hardware.usable_gpus
    budgets = _gpu_budgets(gpus, hardware)
    budget = sum(budgets)
    split = check_split(user_split, [g.name for g in gpus]) if user_split else tensor_split(budgets) if gpus else []
    unified = bool(gpus) and all(g.integrated for g in gpus)
    ram = int(hardware.memory.available * RAM_MARGIN)
    kv_layer_tok = shape.kv_bytes_per_token(kv_type) / shape.layers

    def attempt(ctx: int, n_gpu: int, force: bool = False) -> FitPlan | None:
        total_ctx = -(-ctx * n_parallel // 256) * 256  # llama.cpp pads the cache to 256 cells
        n_gpu = n_gpu if gpus else 0
        on_gpu, head_on_gpu = min(n_gpu, shape.layers), n_gpu > shape.layers
        compute = shape.compute_bytes()
        per_device = layers_per_device(split, n_gpu, shape.layers) if gpus else []
        head = max((d for d, n in enumerate(per_device) if n), default=-1) if head_on_gpu else -1
        device_bytes = [  # each device: its layers with their KV cache, the head on the last, a compute buffer
            (n - (d == head)) * (shape.layer_bytes + int(kv_layer_tok * total_ctx))
            + (shape.output_bytes if d == head else 0)
            + (compute if n else 0)
            for d, n in enumerate(per_device)
        ]
        gpu_w = on_gpu * shape.layer_bytes + (shape.output_bytes if head_on_gpu else 0)
        gpu_kv = int(on_gpu * kv_layer_tok * total_ctx)
        gpu = sum(device_bytes)
        cpu_w = (
            (shape.layers - on_gpu) * shape.layer_bytes
            + shape.embed_bytes
            + (0 if head_on_gpu or shape.tied_output else shape.output_bytes)
        )
        cpu_kv = int((shape.layers - on_gpu) * kv_layer_tok * total_ctx)
        cpu = cpu_w + cpu_kv + shape.touched_compute_bytes() + shape.runtime_bytes()
        repack = int(shape.repack_bytes * (shape.layers - on_gpu) / shape.layers) if _repacks(hardware) else 0
        fits = (
            all(b <= cap for b, cap in zip(device_bytes, budgets, strict=False))
            and cpu + (gpu if unified else 0) <= ram
        )
        if not fits and not force:
            return None
        speed = estimate_speed(shape, hardware, gpus, n_gpu)
        if not on_gpu:
            verdict, device = "fits in RAM", "CPU"
        elif n_gpu > shape.layers:
            verdict, device = "fits on GPU", _device_name(gpus)
        else:
            verdict, device = "partly on GPU", f"{_device_name(gpus)} + CPU"
        return FitPlan(
            shape.name,
            n_gpu,
            ctx,
            n_parallel,
            hardware.cpu.threads,
            device,
            gpu,
            cpu,
            speed.decode_tps,
            speed.prompt_tps,
            fits,
            verdict if fits else "too big",
            "",
            budget,
            map_file=not repack,
            decode_ceiling_tps=speed.ceiling_tps,
            tiled_matmul=n_gpu > shape.layers or _tiled_matmul_pays(hardware, n_parallel),
            details={
                "gpu_weights": gpu_w,
                "gpu_kv": gpu_kv,
                "cpu_weights": cpu_w,
                "cpu_kv": cpu_kv,
                "compute": compute,
                "runtime": shape.runtime_bytes(),
                "cpu_repack": repack,
            },
            gpu_devices=[d for d, n in zip(hardware.offload_devices(), per_device, strict=False) if n],
            device_layers=[n for n in per_device if n],
            tensor_split=split if len(gpus) > 1 else [],
            user_split=tuple(user_split) if user_split else None,
            kv_type=kv_type,
            flash_attn="auto" if kv_type == "f16" else "on",
        )

    ladder = [desired] if exact_ctx else _ctx_ladder(shape, desired)
    if gpu_layers is not None:
        pinned = shape.layers + 1 if gpu_layers < 0 else min(gpu_layers, shape.layers + 1)
        p = next(filter(None, (attempt(ctx, pinned) for ctx in ladder)), None) or attempt(
            ladder[-1], pinned, force=True
        )
        assert p is not None
        where = (
            f"{p.n_gpu_layers} of {shape.layers + 1} layers on the GPU (--gpu-layers)"
            if p.n_gpu_layers
            else "on the CPU"
        )
        p.reason = f"{where}; context {p.n_ctx}" + ("" if p.fits else " (more than the memory free, by estimate)")
        return p
    if gpus:
        for ctx in [c for c in ladder if c >= min(USEFUL_CTX, ladder[0])]:
            if p := attempt(ctx, shape.layers + 1):
                p.reason = f"all {shape.layers} layers fit in {budget / GiB:.1f} GiB of GPU memory"
                return p
    for ctx in ladder:
        for n_gpu in range(shape.layers if gpus else 0, -1, -1):
            if p := attempt(ctx, n_gpu):
                where = f"{n_gpu} of {shape.layers} layers on the GPU" if n_gpu else "on the CPU"
                p.reason = f"{where}; context {ctx}" + (f" (reduced from {ladder[0]})" if ctx < ladder[0] else "")
                return p
    need = shape.file_bytes + int(kv_layer_tok * shape.layers * ladder[-1]) + shape.runtime_bytes()
    return FitPlan(
        shape.name,
        0,
        ladder[-1],
        n_parallel,
        hardware.cpu.threads,
        "none",
        0,
        need,
        None,
        None,
        False,
        "too big",
        f"needs about {need / GiB:.1f} GiB; {ram / GiB:.1f} GiB of RAM and {budget / GiB:.1f} GiB of GPU memory are free",
        budget,
        kv_type=kv_type,
    )


def plan_at(
    shape: ModelShape, hardware: Hardware, n_ctx: int, n_parallel: int, gpu_layers: int, kv_type: str
) -> FitPlan:
    """The plan at exactly this context and these GPU layers (negative: all), fitting or not (`fits` says)."""
    check_kv_type(shape, kv_type)
    return _plan(shape, hardware, n_ctx, n_parallel, gpu_layers, None, kv_type, exact_ctx=True)


def step_down(shape: ModelShape, hardware: Hardware, failed: FitPlan) -> FitPlan | None:
    """The next smaller plan after `failed` did not load (memory taken since it was made): a quarter
    fewer GPU layers at the same context, then on the CPU a context halved down to config.MIN_CTX."""
    if failed.n_gpu_layers > 0:
        fewer = max(failed.n_gpu_layers - max(1, (shape.layers + 1) // 4), 0)
        p = plan(
            shape,
            hardware,
            failed.n_ctx,
            failed.n_parallel,
            gpu_layers=fewer,
            user_split=failed.user_split,
            kv_type=failed.kv_type,
        )
    elif failed.n_ctx // 2 >= min(config.MIN_CTX, failed.n_ctx):
        p = plan(shape, hardware, failed.n_ctx // 2, failed.n_parallel, gpu_layers=0, kv_type=failed.kv_type)
    else:
        return None
    return p if (p.n_gpu_layers, p.n_ctx) < (failed.n_gpu_layers, failed.n_ctx) else None


@functools.lru_cache(maxsize=16)
def _plan_cached(
    path: str,
    mtime: float,
    desired_ctx: int | None,
    n_parallel: int,
    gpu_layers: int | None,
    user_split: tuple[float, ...] | None,
    kv_type: str | None,
) -> FitPlan:
    from .gguf_meta import read_gguf
    from .hardware import detect_live

    shape = ModelShape.from_gguf(read_gguf(path))
    return plan(shape, detect_live(), desired_ctx, n_parallel, gpu_layers, user_split, kv_type)


def plan_for_file(
    path: str | Path,
    desired_ctx: int | None = None,
    n_parallel: int = 1,
    gpu_layers: int | None = None,
    user_split: Sequence[float] | None = None,
    kv_type: str | None = None,
) -> FitPlan:
    """The load settings for a local GGUF on this machine (live detection, cached per process)."""
    path = Path(path)
    return _plan_cached(
        str(path),
        path.stat().st_mtime,
        desired_ctx,
        n_parallel,
        gpu_layers,
        tuple(user_split) if user_split else None,
        kv_type,
    )
