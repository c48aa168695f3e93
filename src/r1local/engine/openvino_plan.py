"""How the OpenVINO engine loads a model on a device: pure decisions, testable without the device.

- CPU and GPU run OpenVINO GenAI's continuous-batching pipeline (paged KV cache, many requests).
- The NPU runs its static-shape pipeline: one request at a time, compiled for a maximum prompt
  length and a minimum response length (the KV cache holds exactly their sum), so both are part
  of the plan, and a prompt past the maximum is refused or, in a chat, its oldest turns trimmed.
- Every device compiles through OpenVINO's model cache: the first load compiles (minutes on an
  NPU), later loads read the compiled blob. Each model, device and shape gets its own folder, so
  whether a load will compile is known in advance and can be said.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .. import config
from ..errors import EngineUnavailable, UsageError

DEVICES = ("NPU", "GPU", "CPU")  # the OpenVINO devices this engine drives, preferred first
KV_BLOCK = 32  # tokens per block of the paged KV cache (OpenVINO's default on CPU and GPU)


@dataclass(frozen=True)
class OpenVINOPlan:
    device: str  # "CPU", "GPU", "GPU.1", "NPU"
    n_ctx: int  # tokens one request may span
    n_parallel: int  # requests at once (1 on the NPU)
    continuous_batching: bool
    cache_dir: Path
    max_prompt_len: int | None = None  # the NPU's compiled shapes
    min_response_len: int | None = None
    n_threads: int | None = None  # CPU inference threads

    @property
    def first_compile(self) -> bool:
        """No compiled blob yet: this load compiles (slow on the NPU)."""
        return not any(self.cache_dir.glob("*.blob"))

    def properties(self) -> dict:
        """The OpenVINO properties the pipeline is created with."""
        props: dict = {"CACHE_DIR": str(self.cache_dir)}
        if self.max_prompt_len is not None and self.device.startswith("NPU"):  # other plugins refuse them
            props |= {"MAX_PROMPT_LEN": self.max_prompt_len, "MIN_RESPONSE_LEN": self.min_response_len}
        if self.n_threads and self.device == "CPU":
            props["INFERENCE_NUM_THREADS"] = self.n_threads
        return props

    def kv_blocks(self) -> int:
        """Paged KV blocks for every slot's full context (continuous batching only)."""
        return self.n_parallel * -(-self.n_ctx // KV_BLOCK)


def choose_device(available: list[str], wanted: str | None, model_is_folder: bool) -> str:
    """`wanted` if OpenVINO lists it; otherwise the NPU for a published NPU folder, an Intel GPU
    when there is one, else the CPU (OpenVINO always has it)."""
    if wanted:
        kind = wanted.upper()
        if not any(d == kind or d.startswith(kind + ".") for d in available):
            raise EngineUnavailable(
                f"OpenVINO has no {kind} device here (it sees {', '.join(available) or 'none'}).",
                "Check the device's driver, or choose one of those.",
            )
        return kind
    kinds = [d.split(".")[0] for d in available]
    if model_is_folder and "NPU" in kinds:
        return "NPU"
    return "GPU" if "GPU" in kinds else "CPU"


def plan(
    model: Path,
    device: str,
    *,
    n_ctx: int | None,
    n_parallel: int,
    trained_ctx: int,
    n_threads: int | None = None,
    npu_shape: tuple[int, int] | None = None,
) -> OpenVINOPlan:
    kind = device.split(".")[0]
    if kind == "NPU":
        max_prompt, min_response = npu_shape or config.npu_shape()
        if max_prompt < 16 or min_response < 16:
            raise UsageError("The NPU's maximum prompt and minimum response must be at least 16 tokens each.")
        shape = (max_prompt, min_response)
        return OpenVINOPlan(
            device, max_prompt + min_response, 1, False, _cache_dir(model, device, shape), max_prompt, min_response
        )
    ctx = min(n_ctx or config.DEFAULT_CTX, trained_ctx)
    return OpenVINOPlan(device, ctx, n_parallel, True, _cache_dir(model, device, ()), n_threads=n_threads)


def _cache_dir(model: Path, device: str, shape: tuple) -> Path:
    """One folder per model version, device and shape: a changed file never reads a stale conversion."""
    version = model / "openvino_model.xml" if model.is_dir() else model
    stat = version.stat() if version.exists() else None
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}" if stat else ""
    key = hashlib.sha256(f"{model.resolve()}|{stamp}|{device}|{shape}".encode()).hexdigest()[:16]
    return config.openvino_cache_dir() / f"{model.name[:40]}-{device}-{key}"
