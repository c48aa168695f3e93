"""CPU model, cores and the instruction-set features llama.cpp cares about, per OS."""

from __future__ import annotations

import math
import os

from . import arm
from .model import CPU
from .parse import as_list, cpu_list, key_values
from .probe import Probe

# /proc/cpuinfo flag (x86) or Features entry (arm64) -> the name llama.cpp's system info uses
X86_FEATURES = {
    "avx": "AVX",
    "avx2": "AVX2",
    "fma": "FMA",
    "f16c": "F16C",
    "avx512f": "AVX512",
    "avx512_vnni": "AVX512_VNNI",
    "avx512_bf16": "AVX512_BF16",
    "avx512vbmi": "AVX512_VBMI",
    "avx_vnni": "AVX_VNNI",
    "amx_int8": "AMX_INT8",
    "amx_bf16": "AMX_BF16",
}
ARM_FEATURES = {
    "asimd": "NEON",
    "asimddp": "DOTPROD",
    "i8mm": "I8MM",
    "asimdhp": "FP16",
    "sve": "SVE",
    "sve2": "SVE2",
    "sme": "SME",
}
# macOS sysctl keys (hw.optional.*) and Intel-Mac feature words
MAC_ARM_FEATURES = {
    "hw.optional.neon": "NEON",
    "hw.optional.arm.FEAT_DotProd": "DOTPROD",
    "hw.optional.arm.FEAT_I8MM": "I8MM",
    "hw.optional.arm.FEAT_FP16": "FP16",
    "hw.optional.arm.FEAT_SME": "SME",
}
MAC_X86_FEATURES = {"AVX1.0": "AVX", "AVX2": "AVX2", "FMA": "FMA", "F16C": "F16C", "AVX512F": "AVX512"}
# Windows IsProcessorFeaturePresent ids
WINDOWS_FEATURES = {
    "AVX": 39,
    "AVX2": 40,
    "AVX512": 41,
    "NEON": 19,
    "DOTPROD": 43,
    "SVE": 46,
    "I8MM": 66,
}
FEATURE_ORDER = [*X86_FEATURES.values(), *ARM_FEATURES.values()]


def _sorted_features(found: set[str]) -> list[str]:
    return sorted(found, key=lambda f: FEATURE_ORDER.index(f) if f in FEATURE_ORDER else 99)


def _cgroup_cpu_quota(probe: Probe) -> float | None:
    """CPUs a container may use (cgroup v2 cpu.max or v1 cfs quota), None when unlimited."""
    text = probe.read("/sys/fs/cgroup/cpu.max")
    if text and not text.startswith("max"):
        v2_quota, v2_period = text.split()[:2]
        return int(v2_quota) / int(v2_period)
    quota = probe.read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    period = probe.read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    if quota and period and int(quota) > 0:
        return int(quota) / int(period)
    return None


def _linux(probe: Probe, machine: str) -> CPU:
    text = probe.read("/proc/cpuinfo") or ""
    blocks = [key_values(b) for b in text.split("\n\n") if b.strip()]
    procs = [b for b in blocks if "processor" in b and b["processor"].isdigit()]
    first = procs[0] if procs else {}
    arm_cores = arm.cores(procs)
    model = first.get("model name") or _arm_name(probe, first, arm_cores) or "unknown CPU"
    raw = set((first.get("flags") or first.get("Features") or "").split())
    table = ARM_FEATURES if "Features" in first else X86_FEATURES
    features = {name for flag, name in table.items() if flag in raw}

    logical = len(procs) or 1
    core_of = {int(p["processor"]): (p.get("physical id"), p["core id"]) for p in procs if "core id" in p}
    physical = len(set(core_of.values())) or logical
    # Intel hybrid CPUs list their P-cores' logical CPUs here; ARM big.LITTLE chips name their cores
    perf = arm.big_cores(arm_cores)
    p_cpus = probe.read("/sys/devices/cpu_core/cpus")
    if p_cpus and probe.read("/sys/devices/cpu_atom/cpus"):
        perf = len({core_of.get(c, c) for c in cpu_list(p_cpus)})

    # A container sees the host's CPUs but may run on fewer
    allowed = probe.call("os.sched_getaffinity", lambda: len(os.sched_getaffinity(0)))
    quota = _cgroup_cpu_quota(probe)
    limit = min(x for x in (logical, allowed, math.ceil(quota) if quota else None) if x)
    if limit < logical:
        logical, physical = limit, min(physical, limit)
        perf = min(perf, limit) if perf else None
    return CPU(
        model,
        "arm64" if machine in ("aarch64", "arm64") else machine,
        physical,
        logical,
        perf,
        _sorted_features(features),
        arm.kinds(arm_cores),
    )


def _arm_name(probe: Probe, first: dict[str, str], cores: list[str]) -> str | None:
    """ "Raspberry Pi 5 Model B Rev 1.0 (Broadcom BCM2712, 4x Cortex-A76)": the board, its SoC, its cores."""
    model, soc = arm.board(probe, first)
    details = [d for d in (soc, arm.describe(cores) if cores else None) if d]
    name = model or first.get("Hardware") or (details.pop(0) if details else None)
    return f"{name} ({', '.join(details)})" if name and details else name


def _macos(probe: Probe, machine: str) -> CPU:
    res = probe.run("sysctl", ["sysctl", "hw", "machdep.cpu"])
    kv = key_values(res.stdout) if res else {}
    logical = int(kv.get("hw.logicalcpu", 0) or 0) or 1
    physical = int(kv.get("hw.physicalcpu", 0) or 0) or logical
    if machine == "arm64":
        features = {name for key, name in MAC_ARM_FEATURES.items() if kv.get(key) == "1"}
        # perflevel0 is the performance cluster; absent on chips with one kind of core
        perf = int(kv["hw.perflevel0.physicalcpu"]) if "hw.perflevel1.physicalcpu" in kv else None
    else:
        words = set(f"{kv.get('machdep.cpu.features', '')} {kv.get('machdep.cpu.leaf7_features', '')}".split())
        features = {name for word, name in MAC_X86_FEATURES.items() if word in words}
        perf = None
    return CPU(
        kv.get("machdep.cpu.brand_string", "unknown CPU"), machine, physical, logical, perf, _sorted_features(features)
    )


def _windows_features() -> list[str]:
    import ctypes

    present = ctypes.windll.kernel32.IsProcessorFeaturePresent  # type: ignore[attr-defined]
    return [name for name, pf in WINDOWS_FEATURES.items() if present(pf)]


def _windows(probe: Probe, machine: str, cim: dict) -> CPU:
    procs = as_list(cim.get("cpu"))
    model = (procs[0].get("Name") or "unknown CPU").strip() if procs else "unknown CPU"
    physical = sum(int(p.get("NumberOfCores") or 0) for p in procs)
    logical = sum(int(p.get("NumberOfLogicalProcessors") or 0) for p in procs)
    if not logical:
        counts = probe.call("psutil.cpu_count", _psutil_counts) or {}
        logical, physical = counts.get("logical") or 1, counts.get("physical") or 1
    features = set(probe.call("windows.cpu_features", _windows_features) or [])
    arch = "arm64" if machine.upper() in ("ARM64", "AARCH64") else "x86_64"
    return CPU(model, arch, physical or logical, logical, None, _sorted_features(features))


def _psutil_counts() -> dict:
    import psutil

    return {"logical": psutil.cpu_count(), "physical": psutil.cpu_count(logical=False)}


def detect_cpu(probe: Probe, plat: dict[str, str], cim: dict) -> CPU:
    system, machine = plat["system"], plat["machine"]
    if system == "Darwin":
        return _macos(probe, machine)
    if system == "Windows":
        return _windows(probe, machine, cim)
    return _linux(probe, machine)
