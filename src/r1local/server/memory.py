"""Before a load: will the model fit in the memory free right now? The fit's estimate decides,
and also chooses the GPU layers and the context that fit."""

from __future__ import annotations

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
    shape = fit.ModelShape.from_gguf(read_gguf(path), name=path.stem)
    return fit.plan(shape, machine, settings.ctx, settings.parallel, settings.n_gpu_layers,
                    settings.tensor_split or None, settings.kv_type)


def refusal(path: Path, load_plan: fit.FitPlan) -> InsufficientMemory:
    return InsufficientMemory(
        f"{path.stem} does not fit in the memory free now: it {load_plan.reason}.",
        "Unload another model (keep_alive 0), choose a smaller quantisation, or lower --ctx / --parallel.",
    )
