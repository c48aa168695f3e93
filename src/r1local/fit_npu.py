"""The NPU choice: on a PC with an Intel NPU, an R1 distill made for it runs there through the
OpenVINO engine, leaving the CPU and GPU free, at about the speed the shared RAM allows.

The NPU reads its weights from system RAM, so decode is bound by RAM bandwidth like the CPU's;
what it wins is the CPU's cores and the battery. A distill suits the NPU when OpenVINO publishes a
folder made for it (symmetric INT4) and its weights plus the compiled KV cache fit in free RAM.
"""

from __future__ import annotations

from . import config
from .catalog import Variant
from .choice import Choice
from .fit import RAM_MARGIN, FitPlan
from .hardware.model import GiB, Hardware

NPU_BW_EFF = 0.45  # of RAM bandwidth the NPU's decode reaches (Intel's published 1.5B figures, Meteor Lake)
NPU_PROMPT_TPS = 400.0  # prompt tokens/s of a 1.5B INT4 on an NPU 3720 (Intel's published figure)
KV_BYTES_PER_TOKEN_PER_LAYER = 2 * 2 * 128 * 2  # K and V, 2 kv heads x 128 dims, fp16 (Qwen2 1.5B/7B shape)


def intel_npu(hw: Hardware) -> str | None:
    """The Intel NPU's name, when the PC has one."""
    return next((n.name for n in hw.npus if n.vendor == "intel"), None)


def npu_choice(hw: Hardware, variants: list[Variant]) -> Choice | None:
    """The largest NPU-made distill that fits in free RAM with its compiled context; None when
    there is no Intel NPU or none fits. The reason says why the NPU was chosen."""
    npu = intel_npu(hw)
    if npu is None:
        return None
    max_prompt, min_response = config.npu_shape()
    n_ctx = max_prompt + min_response
    ram = int(hw.memory.available * RAM_MARGIN)
    best = None
    for v in variants:
        shape = v.shape
        need = v.size_bytes + shape.layers * KV_BYTES_PER_TOKEN_PER_LAYER * n_ctx
        if need > ram or (best and v.size_bytes <= best.shape.file_bytes):
            continue
        bandwidth = hw.memory_peak_gbs or hw.cpu_bandwidth_gbs  # the NPU is not limited by CPU threads
        decode = bandwidth * 1e9 * NPU_BW_EFF / v.size_bytes if bandwidth else None
        installed = hw.openvino is not None and any(d.name.startswith("NPU") for d in hw.openvino.devices)
        reason = (f"{npu} runs it through the OpenVINO engine, leaving the CPU and GPU free; compiled for "
                  f"prompts up to {max_prompt} tokens and answers of at least {min_response}"
                  + ("" if installed else f"; first: {config.OPENVINO_EXTRA}"))
        plan = FitPlan(v.name, 0, n_ctx, 1, 0, npu, 0, need, decode, NPU_PROMPT_TPS * 1.78e9 / (shape.params or 1.78e9),
                       True, "fits on NPU", reason)
        best = Choice(v.name, shape, plan, why="the largest distill made for the Intel NPU that fits")
    return best


def npu_line(choice: Choice, display: str) -> str:
    p = choice.plan
    speed = "speed unknown" if p.decode_tps is None else f"about {p.decode_tps:.0f} tokens/s (estimate)"
    return (f"Best for this PC: {display}, on the {p.device} through OpenVINO (needs {p.cpu_bytes / GiB:.1f} GiB of shared RAM), "
            f"{p.n_ctx // 1024}k context, {speed}  ->  r1local pull {choice.name}")


def prefer(npu: Choice | None, gguf: Choice | None) -> Choice | None:
    """The NPU's choice, unless llama.cpp holds a model wholly on a GPU and runs it faster."""
    if npu is None:
        return gguf
    if gguf is not None and gguf.plan.all_on_gpu and (gguf.plan.decode_tps or 0) > (npu.plan.decode_tps or 0):
        return gguf
    return npu
