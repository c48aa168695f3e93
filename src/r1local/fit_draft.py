"""A draft model beside the model it drafts for: where the draft goes and whether the pair fits.

The draft holds one sequence per slot of its target at the target's context (engine/draft.py), so
its cache is planned at that context, of the target's KV cache type (f16 where the draft's heads
cannot take a quantised one). It follows the target onto the GPU(s) when the target is wholly
there and the draft's layers, cache and compute buffer fit in what the target leaves of the GPU
memory the plan had; otherwise it runs on the CPU, in RAM beside the target's share. A target only
partly offloaded has already filled the GPU: draft layers there would push target layers out,
which costs more decode time than the draft saves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .fit import RAM_MARGIN, FitPlan, ModelShape, plan_at
from .hardware.model import Hardware


@dataclass(frozen=True)
class DraftFit:
    plan: FitPlan  # the draft's own plan: its GPU layers, KV type and memory
    pair_fits: bool  # the target and the draft together fit in the memory planned for

    @property
    def weights_bytes(self) -> int:
        d = self.plan.details
        return d.get("gpu_weights", 0) + d.get("cpu_weights", 0)

    @property
    def kv_bytes(self) -> int:
        d = self.plan.details
        return d.get("gpu_kv", 0) + d.get("cpu_kv", 0)

    @property
    def total_bytes(self) -> int:
        """Everything the draft adds: RAM and GPU memory."""
        return self.plan.cpu_bytes + self.plan.gpu_bytes

    @property
    def on_gpu(self) -> bool:
        return self.plan.n_gpu_layers > 0


def plan_draft(draft: ModelShape, hardware: Hardware, target: FitPlan) -> DraftFit:
    """Where the draft of `target` goes (see the module's docstring) and whether the pair fits."""
    kv_type = target.kv_type if draft.kv_quantisable() else "f16"

    def beside(gpu_layers: int) -> DraftFit:
        p = plan_at(draft, hardware, target.n_ctx, target.n_parallel, gpu_layers, kv_type)
        unified = bool(hardware.usable_gpus) and all(g.integrated for g in hardware.usable_gpus)
        gpu = target.gpu_bytes + p.gpu_bytes
        ram = target.cpu_bytes + p.cpu_bytes + (gpu if unified else 0)
        fits = target.fits and gpu <= target.gpu_budget and ram <= hardware.memory.available * RAM_MARGIN
        return DraftFit(p, fits)

    if target.all_on_gpu and (on_gpu := beside(-1)).pair_fits:
        return on_gpu
    return beside(0)


def plan_draft_file(path: str | Path, hardware: Hardware, target: FitPlan) -> DraftFit:
    """plan_draft for a local GGUF."""
    from .gguf_meta import read_gguf

    return plan_draft(ModelShape.from_gguf(read_gguf(path), name=Path(path).stem), hardware, target)


def with_draft(target: FitPlan, drafting: DraftFit, name: str) -> FitPlan:
    """The target's plan counting its draft: memory added, fitting only if the pair does, and the
    draft's GPU layers kept for the load (the memory the pair was checked against)."""
    where = "GPU memory" if drafting.on_gpu else "RAM"
    return replace(
        target,
        cpu_bytes=target.cpu_bytes + drafting.plan.cpu_bytes,
        gpu_bytes=target.gpu_bytes + drafting.plan.gpu_bytes,
        fits=drafting.pair_fits,
        verdict=target.verdict if drafting.pair_fits else "too big",
        reason=f"{target.reason}; its draft {name} needs {drafting.total_bytes / 2**30:.2f} GiB of {where} more",
        draft_gpu_layers=drafting.plan.n_gpu_layers,
    )


def draft_placement(path: str | Path, hardware: Hardware, target: FitPlan) -> FitPlan:
    """The draft's plan for loading beside `target`; where `target` already counts its draft
    (with_draft), the GPU layers it was checked with."""
    drafting = plan_draft_file(path, hardware, target).plan
    if target.draft_gpu_layers is None or target.draft_gpu_layers == drafting.n_gpu_layers:
        return drafting
    return replace(drafting, n_gpu_layers=target.draft_gpu_layers)
