"""Before a load: will the model fit in the memory free right now? The fit's estimate decides,
and also chooses the GPU layers and the context that fit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import fit, hardware
from ..errors import InsufficientMemory
from ..gguf_meta import read_gguf
from ..hardware import Hardware
from .settings import ServerSettings


def hardware_now() -> Hardware:
    """A fresh reading: free RAM and VRAM change as models load and unload."""
    return hardware.detect_now()


def plan(path: Path, settings: ServerSettings, machine: Hardware) -> fit.FitPlan:
    """The model's plan; with a draft model, the draft's RAM (weights, its cache at the same context
    and slots) is added, and the plan fits only if both do."""
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
    draft_shape = fit.ModelShape.from_gguf(read_gguf(draft), name=Path(draft).stem)
    need = fit.plan(draft_shape, machine, chosen.n_ctx, settings.parallel, 0, kv_type="f16").cpu_bytes
    cpu = chosen.cpu_bytes + need
    fits = chosen.fits and cpu <= machine.memory.available * fit.RAM_MARGIN
    reason = chosen.reason + f"; its draft {Path(draft).stem} needs {need / 2**30:.2f} GiB of RAM more"
    return dataclasses.replace(
        chosen, cpu_bytes=cpu, fits=fits, verdict=chosen.verdict if fits else "too big", reason=reason
    )


def refusal(path: Path, load_plan: fit.FitPlan) -> InsufficientMemory:
    return InsufficientMemory(
        f"{path.stem} does not fit in the memory free now: it {load_plan.reason}.",
        "Unload another model (keep_alive 0), choose a smaller quantisation, or lower --ctx / --parallel.",
    )
