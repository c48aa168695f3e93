"""RAM bandwidth: measured on this machine by a short copy probe, else published for its CPU.

Decode speed is bound by how fast the weights stream from memory, so this one number decides
most of a speed estimate. `measure()` copies buffers far larger than any cache with the decode
threads for a fraction of a second; `published()` matches a normalised CPU or board name against
the memory the platform ships with. Where neither knows, the bandwidth is unknown (None): no
default is invented.
"""

from __future__ import annotations

import ctypes
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MiB = 1024**2
PROBE_SECONDS = 0.1  # copying time; allocating and first touching the buffers comes on top
PROBE_BYTES = 256 * MiB  # source + destination over all threads: beyond the largest L3 caches (96 MiB)
PROBE_MIN_PER_THREAD = MiB  # each thread's buffers may be small: together they still dwarf the caches
PROBE_RUNS = 3  # the best of a few short runs: other programs slow some of them, rarely all
REMEASURE_BELOW = 0.5  # a kept figure under half the published one was taken on a busy machine


@dataclass(frozen=True)
class Platform:
    """What a CPU or board name tells about its memory."""

    gbs: float  # peak RAM bandwidth, GB/s (10^9 bytes)
    memory: str  # "LPDDR5X-8533, 128-bit"


def _gbs(mts: int, bus_bits: int) -> float:
    """Peak bandwidth of `bus_bits` of memory at `mts` mega-transfers per second."""
    return round(mts * bus_bits / 8 / 1000, 1)


def _p(memory: str, mts: int, bus_bits: int) -> Platform:
    return Platform(_gbs(mts, bus_bits), f"{memory}-{mts}, {bus_bits}-bit")


DUAL = 128  # two 64-bit DIMM channels (or four 32-bit LPDDR channels)

# (pattern over the normalised name, platform), first match wins. Desktop sockets take more than
# one memory speed; the entry is the speed such machines are usually sold with.
PLATFORMS: list[tuple[str, Platform]] = [
    # Apple Silicon (the CPU cluster reaches most of the unified memory's bandwidth)
    (r"apple m1 ultra", _p("LPDDR5", 6400, 1024)),
    (r"apple m1 max", _p("LPDDR5", 6400, 512)),
    (r"apple m1 pro", _p("LPDDR5", 6400, 256)),
    (r"apple m1\b", _p("LPDDR4X", 4266, 128)),
    (r"apple m2 ultra", _p("LPDDR5", 6400, 1024)),
    (r"apple m2 max", _p("LPDDR5", 6400, 512)),
    (r"apple m2 pro", _p("LPDDR5", 6400, 256)),
    (r"apple m2\b", _p("LPDDR5", 6400, 128)),
    (r"apple m3 ultra", _p("LPDDR5", 6400, 1024)),
    (r"apple m3 max", _p("LPDDR5", 6400, 512)),
    (r"apple m3 pro", _p("LPDDR5", 6400, 192)),
    (r"apple m3\b", _p("LPDDR5", 6400, 128)),
    (r"apple m4 max", _p("LPDDR5X", 8533, 512)),
    (r"apple m4 pro", _p("LPDDR5X", 8533, 256)),
    (r"apple m4\b", _p("LPDDR5X", 7500, 128)),
    # Qualcomm Snapdragon X (Oryon), Windows on Arm laptops
    (r"snapdragon.*\bx\b|\bx1[ep]\d|oryon", _p("LPDDR5X", 8448, DUAL)),
    # Raspberry Pi and other boards, by the board's or SoC's name
    (r"raspberry pi (5|500)|compute module 5|bcm2712", _p("LPDDR4X", 4267, 32)),
    (r"raspberry pi (4|400)|compute module 4|bcm2711", _p("LPDDR4", 3200, 32)),
    (r"raspberry pi 3|bcm2837", _p("LPDDR2", 900, 32)),
    (r"rk3588", _p("LPDDR4X", 4224, 64)),
    (r"rk356[68]", _p("LPDDR4", 3200, 32)),
    (r"jetson agx orin", _p("LPDDR5", 6400, 256)),
    (r"jetson orin nx", _p("LPDDR5", 6400, DUAL)),
    (r"jetson orin nano", _p("LPDDR5", 4266, DUAL)),
    (r"nvidia grace", _p("LPDDR5X", 8533, 512)),
    (r"ampere.*altra|neoverse-n1", _p("DDR4", 3200, 512)),
    # Intel Core Ultra: series 2 (Lunar Lake V, Arrow Lake H/HX/desktop), series 1 (Meteor Lake)
    (r"core ultra [579] 2\d\dv", _p("LPDDR5X", 8533, DUAL)),
    (r"core ultra [579] 2\d\dhx", _p("DDR5", 6400, DUAL)),
    (r"core ultra [579] 2\d\d[hu]", _p("LPDDR5X", 8400, DUAL)),
    (r"core ultra [579] 2\d\d", _p("DDR5", 6400, DUAL)),  # Arrow Lake desktop: 285K, 265K, 245
    (r"core ultra [579] 1\d\d", _p("LPDDR5X", 7467, DUAL)),
    # Intel Core 10th-14th gen and Core 100/200: H/HX laptops (5 digits), U/P laptops (4), desktops
    (r"core i[3579]-1[34]\d{3}hx?\b", _p("DDR5", 5200, DUAL)),
    (r"core i[3579]-12\d{3}hx?\b", _p("DDR5", 4800, DUAL)),
    (r"core i[3579]-1[234]\d\d[up]\b", _p("LPDDR5", 5200, DUAL)),
    (r"core i[3579]-1[34]\d{3}", _p("DDR5", 5600, DUAL)),
    (r"core i[3579]-12\d{3}", _p("DDR5", 4800, DUAL)),
    (r"core i[3579]-11\d\dg\d", _p("LPDDR4X", 4266, DUAL)),
    (r"core i[3579]-1[01]\d{3}", _p("DDR4", 3200, DUAL)),
    (r"core [357] [12]\d\d[hu]", _p("DDR5", 5200, DUAL)),
    (r"intel n(50|97|100|150|200|250|300|305|355)\b|core i3-n3\d\d", _p("DDR5", 4800, 64)),  # one channel
    # AMD Ryzen AI (Strix Halo's CPU cores reach about half of its 256-bit bus; the GPU gets the rest)
    (r"ryzen ai max", Platform(128.0, "LPDDR5X-8000, 256-bit (about half reachable by the CPU cores)")),
    (r"ryzen ai [579] (hx )?3[67]\d", _p("LPDDR5X", 7500, DUAL)),  # Strix Point: HX 370, 365
    (r"ryzen ai [579] 3[345]\d", _p("DDR5", 5600, DUAL)),  # Krackan Point: 350, 340
    # AMD Ryzen 5000-9000
    (r"ryzen [3579] [789]\d\d\d(hx|hs|h|u)", _p("DDR5", 5600, DUAL)),  # 7040/7045/8040 mobile
    (r"ryzen [3579] 6\d\d\d(hs|h|u)", _p("DDR5", 4800, DUAL)),
    (r"ryzen [3579] [5]\d\d\d(hx|hs|h)", _p("DDR4", 3200, DUAL)),
    (r"ryzen [3579] [5]\d\d\du", _p("LPDDR4X", 4266, DUAL)),
    (r"ryzen [3579] [789]\d\d\d", _p("DDR5", 6000, DUAL)),  # AM5 desktop, the usual EXPO kit
    (r"ryzen [3579] 5\d\d\d", _p("DDR4", 3200, DUAL)),  # AM4 desktop
    (r"threadripper", _p("DDR5", 5200, 256)),
    (r"epyc|xeon", _p("DDR4", 3200, 512)),  # a server's eight channels; few threads reach a fraction
]

# ARM cores without a known board: the memory such boards usually carry; Apple's and Qualcomm's
# cores (Linux on Apple Silicon, Snapdragon X) name their chip
CORE_PLATFORMS: dict[str, Platform] = {
    "Cortex-A53": _p("LPDDR3", 1600, 32),
    "Cortex-A55": _p("LPDDR4", 3200, 32),
    "Cortex-A72": _p("LPDDR4", 3200, 32),
    "Cortex-A73": _p("LPDDR4", 3200, 32),
    "Cortex-A76": _p("LPDDR4X", 4267, 32),
    "Cortex-A78": _p("LPDDR5", 5500, 64),
    "Neoverse-N1": _p("DDR4", 3200, 512),
    "Neoverse-V1": _p("DDR5", 4800, 512),
    "Neoverse-V2": _p("LPDDR5X", 8533, 512),
    "Apple M1 Firestorm": _p("LPDDR4X", 4266, 128),
    "Apple M1 Pro Firestorm": _p("LPDDR5", 6400, 256),
    "Apple M1 Max Firestorm": _p("LPDDR5", 6400, 512),
    "Apple M2 Avalanche": _p("LPDDR5", 6400, 128),
    "Apple M2 Pro Avalanche": _p("LPDDR5", 6400, 256),
    "Apple M2 Max Avalanche": _p("LPDDR5", 6400, 512),
    "Qualcomm Oryon": _p("LPDDR5X", 8448, DUAL),
}

_NOISE = [
    r"\((r|tm|c)\)",
    r"\bcpu @ [\d.]+ ?ghz",
    r"@ [\d.]+ ?ghz",
    r"\b\d+-core processor",
    r"\bprocessor\b",
    r"\b(w/|with) radeon.*$",
    r"\bradeon \w+ graphics\b",
    r"\b\d+(th|st|nd|rd) gen\b",
    r"\bcpu\b",
]


def normalise(name: str) -> str:
    """ "13th Gen Intel(R) Core(TM) i7-13700H CPU @ 2.40GHz" -> "intel core i7-13700h"."""
    text = name.lower()
    for pattern in _NOISE:
        text = re.sub(pattern, " ", text)
    return " ".join(text.split())


def published(cpu_name: str, cores: Sequence[str] = ()) -> Platform | None:
    """The platform a CPU (or board) name implies, else the usual one of its ARM cores, else None."""
    key = normalise(cpu_name)
    for pattern, platform in PLATFORMS:
        if re.search(pattern, key):
            return platform
    return next((CORE_PLATFORMS[c] for c in cores if c in CORE_PLATFORMS), None)


# ------------------------------------------------------------------------------------ the probe


def measure(threads: int, budget: int = PROBE_BYTES, seconds: float = PROBE_SECONDS) -> float:
    """GB/s that `threads` threads copy between RAM buffers (bytes read + bytes written per second).

    ctypes.memmove releases the GIL, so the threads copy in parallel, as llama.cpp's do."""
    threads = max(threads, 1)
    size = max(budget // (2 * threads), PROBE_MIN_PER_THREAD)
    pairs = [
        ((ctypes.c_char * size).from_buffer(bytearray(size)), (ctypes.c_char * size).from_buffer(bytearray(size)))
        for _ in range(threads)
    ]
    copies = [0] * threads
    ready = threading.Barrier(threads + 1)
    deadline = [float("inf")]  # nobody stops before the clock starts

    def copy(i: int) -> None:
        src, dst = pairs[i]
        ctypes.memmove(dst, src, size)  # touch every page before the clock starts
        ready.wait()
        while time.perf_counter() < deadline[0] or copies[i] == 0:
            ctypes.memmove(dst, src, size)
            copies[i] += 1

    workers = [threading.Thread(target=copy, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    ready.wait()
    start = time.perf_counter()
    deadline[0] = start + seconds
    for w in workers:
        w.join()
    return round(2 * size * sum(copies) / (time.perf_counter() - start) / 1e9, 1)


def measure_best(threads: int, budget: int = PROBE_BYTES, runs: int = PROBE_RUNS) -> float:
    """The best of `runs` probes, so that a machine busy for a moment does not set the figure."""
    return max(measure(threads, budget) for _ in range(runs))


def cached_measure(
    cache: Path, machine: str, threads: int, budget: int = PROBE_BYTES, published_gbs: float | None = None
) -> dict:
    """The probe's answer for this machine and thread count, measured once and kept in `cache`;
    measured once more when the kept figure is far below `published_gbs` (the higher one stays)."""
    key = f"{machine} | {threads} threads"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    kept = known.get(key)
    if not isinstance(kept, dict):
        kept = {}
    kept_gbs = kept.get("gbs")
    if not isinstance(kept_gbs, (int, float)) or isinstance(kept_gbs, bool):
        kept_gbs = None
    if kept_gbs is not None and (
        published_gbs is None or kept_gbs >= REMEASURE_BELOW * published_gbs or kept.get("measured_again")
    ):
        return kept
    gbs = max(measure_best(threads, budget), kept_gbs or 0.0)
    answer = {"gbs": gbs, "threads": threads, "measured_at": int(time.time())}
    if kept_gbs is not None:
        answer["measured_again"] = True  # this machine is as fast as it gets: no probe on every run
    known[key] = answer
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=1) + "\n")
        tmp.replace(cache)
    except OSError:
        pass  # a read-only home only costs the next run another probe
    return answer
