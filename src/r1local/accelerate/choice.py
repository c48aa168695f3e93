"""Which llama.cpp backend this machine needs, read from the same detection as `r1local hw`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import UsageError
from ..hardware import GPU, Hardware
from ..hardware.backends import ALIASES, BACKENDS, Backend, cmake_args, preferred
from ..hardware.verdicts import BUILD_SOURCE
from . import toolchain

# vendors whose GPUs llama.cpp's Vulkan backend drives too (the fallback when the faster toolchain is missing)
VULKAN_VENDORS = {"nvidia", "amd", "intel", "qualcomm", "unknown"}


@dataclass
class Choice:
    backend: Backend
    gpus: list[GPU]  # the GPUs it is for
    why: str
    check: toolchain.Check
    already: bool  # the installed build has this backend already

    @property
    def cmake_args(self) -> str:
        return cmake_args(self.backend, self.gpus)

    def build_env(self) -> dict[str, str]:
        """Compilers CMake would not find on PATH by itself."""
        env = {}
        if self.backend.name == "cuda" and (nvcc := self.check.found.get("nvcc")) and not os.environ.get("CUDACXX"):
            env["CUDACXX"] = nvcc
        return env


def _family(hw: Hardware, os_release: str | None) -> str:
    return toolchain.os_family(hw.system, os_release)


def _has(hw: Hardware, backend: Backend) -> bool:
    return hw.build is not None and hw.build.has(backend.label)


def prebuilt_backend(hw: Hardware, source_choice: Choice, forced: str | None) -> Backend:
    """The backend a prebuilt wheel should carry: the one asked for, else the fastest for the best
    GPU (a wheel needs no toolchain, so Vulkan stands in for nothing)."""
    real = _real_gpus(hw)
    return source_choice.backend if forced or not real else preferred(_best(real), hw.system)


def _real_gpus(hw: Hardware) -> list[GPU]:
    return [g for g in hw.gpus if not g.source.startswith(BUILD_SOURCE)]


def _best(gpus: list[GPU]) -> GPU:
    """The GPU a build is for: a discrete one before an integrated one, then the most memory."""
    return sorted(gpus, key=lambda g: (g.integrated, -(g.vram_total or 0)))[0]


def choose(hw: Hardware, forced: str | None = None, os_release: str | None = None) -> Choice | None:
    """The backend to build: `forced` when given, else the fastest one for the best GPU whose
    toolchain is installed (Vulkan when the vendor's own is missing but Vulkan's is there), else
    the fastest one, whose toolchain then has to be installed first. None: no GPU to build for."""
    family = _family(hw, os_release)
    real = _real_gpus(hw)
    if forced:
        name = ALIASES.get(forced.lower(), forced.lower())
        if name not in BACKENDS:
            raise UsageError(f"Unknown backend {forced!r}.", f"Choose one of: {', '.join(BACKENDS)}.")
        backend = BACKENDS[name]
        return Choice(backend, real, "asked for with --backend", toolchain.check(name, family), _has(hw, backend))
    if not real:
        return None
    best = _best(real)
    backend = preferred(best, hw.system)
    check = toolchain.check(backend.name, family)
    why = f"the fastest llama.cpp backend for the {best.name}"
    if not check.ok and best.vendor in VULKAN_VENDORS and backend.name != "vulkan":
        vulkan = toolchain.check("vulkan", family)
        if vulkan.ok:
            why = (
                f"{backend.label} would be faster for the {best.name} but its toolchain is missing "
                f"({check.install_hint()}); Vulkan's is installed"
            )
            backend, check = BACKENDS["vulkan"], vulkan
    gpus = [g for g in real if backend.name == "vulkan" or g.vendor == best.vendor]
    return Choice(backend, gpus, why, check, _has(hw, backend))
