"""RAM (psutil, or /proc/meminfo in hand-written snapshots) and the container memory limit."""

from __future__ import annotations

from .model import Memory
from .parse import read_int
from .probe import Probe

UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


def _psutil_memory() -> dict:
    import psutil

    vm = psutil.virtual_memory()
    return {"total": vm.total, "available": vm.available}


def _meminfo(probe: Probe) -> dict | None:
    text = probe.read("/proc/meminfo")
    if not text:
        return None
    kb = {}
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[1].isdigit():
            kb[parts[0]] = int(parts[1]) * 1024
    return {"total": kb.get("MemTotal", 0), "available": kb.get("MemAvailable", kb.get("MemFree", 0))}


def cgroup_memory(probe: Probe) -> tuple[int | None, int | None]:
    """(limit, usage) of the tightest memory cgroup this process is in; limit None when unlimited.

    /proc/self/cgroup names our cgroup ("0::/path" for v2, "N:memory:/path" for v1); inside a
    cgroup namespace that path is "/" and the limit sits at the mount root, so every level from
    our cgroup up to the root is checked.
    """
    best: tuple[int | None, int | None] = (None, None)
    for line in (probe.read("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            base, limit_file, usage_file = "/sys/fs/cgroup", "memory.max", "memory.current"
        elif "memory" in controllers.split(","):
            base, limit_file, usage_file = "/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        segments = [s for s in path.strip().split("/") if s]
        for depth in range(len(segments), -1, -1):
            where = "/".join([base, *segments[:depth]])
            limit = read_int(probe, f"{where}/{limit_file}")
            if limit is not None and limit < UNLIMITED and (best[0] is None or limit < best[0]):
                best = (limit, read_int(probe, f"{where}/{usage_file}"))
    return best


def detect_memory(probe: Probe) -> Memory:
    vm = probe.call("psutil.virtual_memory", _psutil_memory) or _meminfo(probe) or {"total": 0, "available": 0}
    total, available = int(vm["total"]), int(vm["available"])
    limit, usage = cgroup_memory(probe)
    if limit is None or limit >= total:
        return Memory(total, available)
    return Memory(total, min(available, max(limit - (usage or 0), 0)), limit)
