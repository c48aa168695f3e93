"""The NPU's candidates: on a PC with an Intel NPU, an R1 distill made for it runs there through the
OpenVINO engine, leaving the CPU and GPU free; it competes with the GGUF files under choice.py's rules.

A distill suits the NPU when OpenVINO publishes a folder made for it (symmetric INT4) and its weights
plus the compiled KV cache fit in free RAM. Its decode speed has the same physical basis as the CPU's
and GPU's: every token reads the weights once, so tokens/s is the NPU's attainable bandwidth over the
bytes per token. The NPU reaches far less of the shared RAM's bandwidth than the CPU cores do; what it
attains is taken from published decode speeds (docs/speed-accuracy.md), never above the RAM's peak.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import config
from .catalog import Variant
from .choice import NPU_VERDICT, Choice, Planned
from .fit import RAM_MARGIN, FitPlan
from .hardware.model import GiB, Hardware

GB = 10**9
NPU_PROMPT_TPS = 400.0  # prompt tokens/s of a 1.5B INT4 on an NPU 3720 (Intel's published figure)
KV_BYTES_PER_TOKEN_PER_LAYER = 2 * 2 * 128 * 2  # K and V, 2 kv heads x 128 dims, fp16 (Qwen2 1.5B/7B shape)


@dataclass(frozen=True)
class Published:
    """One published NPU decode speed, and the bandwidth it implies (bytes per token x tokens/s)."""

    generation: str  # matched against the NPU's generation and name
    model: str
    model_bytes: float  # its INT4 weights: what one token reads
    tps: float
    source: str

    @property
    def attainable_gbs(self) -> float:
        return self.model_bytes * self.tps / GB


# 4-bit weights of a 7-8B model: 7.62e9 (Qwen 7B) / 8.03e9 (Llama 8B) parameters at about 4.5 bits
PUBLISHED = (
    Published("Meteor Lake|Arrow Lake|NPU 3720", "R1-Distill-Qwen-7B INT4", 4.3 * GB, 5.3, "OpenVINO Model Server"),
    Published("XDNA 2", "Llama 3.1 8B Q4", 4.5 * GB, 13.0, "FastFlowLM"),
    Published("X2 Elite", "Qwen 7B INT4", 4.3 * GB, 14.5, "Foundry Local (13-16 tokens/s)"),
)


def published_for(npu_name: str, generation: str | None) -> Published | None:
    text = f"{npu_name} {generation or ''}"
    return next((p for p in PUBLISHED if re.search(p.generation, text, re.IGNORECASE)), None)


def npu_decode_tps(hw: Hardware, npu_name: str, generation: str | None, bytes_per_token: float) -> float | None:
    """Tokens/s of a model reading `bytes_per_token` per token on this NPU: the bandwidth a published
    figure shows it attains (the Meteor Lake figure for an Intel NPU without one of its own), never
    more than the RAM's peak; None where neither is known."""
    known = published_for(npu_name, generation) or (PUBLISHED[0] if "intel" in npu_name.lower() else None)
    if known is None:
        return None
    peak = hw.memory_peak_gbs or hw.cpu_bandwidth_gbs
    return min(known.attainable_gbs, peak or known.attainable_gbs) * GB / bytes_per_token


def intel_npu(hw: Hardware):
    """The Intel NPU, when the PC has one."""
    return next((n for n in hw.npus if n.vendor == "intel"), None)


def npu_plans(hw: Hardware, variants: list[Variant]) -> list[Planned]:
    """Every NPU-made distill with its plan on this PC's Intel NPU (fits: in free RAM with its
    compiled context); none without an Intel NPU."""
    npu = intel_npu(hw)
    if npu is None:
        return []
    max_prompt, min_response = config.npu_shape()
    n_ctx = max_prompt + min_response
    ram = int(hw.memory.available * RAM_MARGIN)
    installed = hw.openvino is not None and any(d.name.startswith("NPU") for d in hw.openvino.devices)
    reason = (
        f"{npu.name} runs it through the OpenVINO engine, leaving the CPU and GPU free; compiled for "
        f"prompts up to {max_prompt} tokens and answers of at least {min_response}"
        + ("" if installed else f"; first: {config.OPENVINO_EXTRA}")
    )
    planned = []
    for v in variants:
        shape = v.shape
        need = v.size_bytes + shape.layers * KV_BYTES_PER_TOKEN_PER_LAYER * n_ctx
        fits = need <= ram
        decode = npu_decode_tps(hw, npu.name, npu.generation, v.size_bytes)
        prompt = NPU_PROMPT_TPS * 1.78e9 / (shape.params or 1.78e9)
        plan = FitPlan(
            v.name, 0, n_ctx, 1, 0, npu.name, 0, need, decode, prompt, fits, NPU_VERDICT if fits else "too big", reason
        )
        planned.append((v.name, shape, plan))
    return planned


def npu_line(choice: Choice, display: str) -> str:
    p = choice.plan
    speed = "speed unknown" if p.decode_tps is None else f"about {p.decode_tps:.0f} tokens/s (estimate)"
    return (
        f"Best for this PC: {display}, on the {p.device} through OpenVINO (needs {p.cpu_bytes / GiB:.1f} GiB "
        f"of shared RAM), {p.n_ctx // 1024}k context, {speed}  ->  r1local pull {choice.name}"
    )
