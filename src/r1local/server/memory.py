"""Before a load: will the model fit in the memory free right now? The fit's estimate decides,
and also chooses the GPU layers and the context that fit."""

from __future__ import annotations

from pathlib import Path

from .. import fit, hardware
from ..errors import InsufficientMemory
from ..fit_draft import plan_draft_file, with_draft
from ..gguf_meta import read_gguf
from ..hardware import Hardware
from .settings import ServerSettings


def hardware_now() -> Hardware:
    """A fresh reading: free RAM and VRAM change as models load and unload."""
    return hardware.detect_now()


def plan(path: Path, settings: ServerSettings, machine: Hardware) -> fit.FitPlan:
    """The model's plan; with a draft model, the draft's memory (weights, its cache at the same
    context, slots and KV type; on the GPU or in RAM, see fit_draft) is added, and the plan fits
    only if both do."""
    shape = fit.ModelShape.from_gguf(read_gguf(path), name=path.stem)
    chosen = fit.plan(
        shape,
        machine,
        settings.ctx,
        settings.parallel,
        settings.n_gpu_layers,
        settings.tensor_split or None,
        settings.kv_type,
    )
    draft = settings.speculation.draft if settings.speculation else None
    if not draft:
        return chosen
    return with_draft(chosen, plan_draft_file(draft, machine, chosen), Path(draft).stem)


def refusal(path: Path, load_plan: fit.FitPlan) -> InsufficientMemory:
    return InsufficientMemory(
        f"{path.stem} does not fit in the memory free now: it {load_plan.reason}.",
        "Unload another model (keep_alive 0), choose a smaller quantisation, or lower --ctx / --parallel.",
    )
