"""Published numbers that detection cannot read from the machine: memory bandwidth and compute of
common GPUs, and names of PCI devices (RAM bandwidth per CPU is in bandwidth.py). Lookups match
the longest key contained in a name, so "RTX 4060 Ti" wins over "RTX 4060"."""

from __future__ import annotations

# GPU name fragment -> (memory bandwidth GB/s, dense FP16 TFLOPS as llama.cpp's matmuls see it)
GPU_SPECS: dict[str, tuple[float, float]] = {
    # NVIDIA GeForce / workstation / data centre
    "RTX 5090": (1792, 210),
    "RTX 5080": (960, 113),
    "RTX 5070 Ti": (896, 88),
    "RTX 5070": (672, 62),
    "RTX 4090": (1008, 165),
    "RTX 4080": (717, 97),
    "RTX 4070 Ti": (504, 80),
    "RTX 4070": (504, 58),
    "RTX 4080 SUPER": (736, 104),
    "RTX 4070 Ti SUPER": (672, 88),
    "RTX 4070 SUPER": (504, 71),
    "RTX 5060 Ti": (448, 47),
    "RTX 5060": (448, 38),
    "RTX 4060 Ti": (288, 44),
    "RTX 4060": (272, 30),
    "RTX 4060 Laptop": (256, 30),
    "RTX 4070 Laptop": (256, 40),
    "RTX 4080 Laptop": (432, 70),
    "RTX 4090 Laptop": (576, 90),
    "RTX 4050 Laptop": (192, 24),
    "RTX 3090 Ti": (1008, 80),
    "RTX 3090": (936, 71),
    "RTX 3080 Ti": (912, 68),
    "RTX 3080": (760, 60),
    "RTX 3070": (448, 40),
    "RTX 3060 Ti": (448, 32),
    "RTX 3060": (360, 25),
    "RTX 3060 Laptop": (336, 22),
    "RTX 3050": (224, 18),
    "RTX 2080 Ti": (616, 54),
    "RTX 2080": (448, 40),
    "RTX 2070": (448, 30),
    "RTX 2060": (336, 26),
    "GTX 1080 Ti": (484, 11),
    "GTX 1660": (192, 10),
    "RTX A6000": (768, 77),
    "RTX 6000 Ada": (960, 180),
    "A100": (1555, 312),
    "H100": (3350, 990),
    "H200": (4800, 990),
    "L40S": (864, 180),
    "L4": (300, 121),
    "A10": (600, 125),
    "T4": (320, 65),
    # AMD Radeon
    "RX 7900 XTX": (960, 122),
    "RX 7900 XT": (800, 103),
    "RX 7900 GRE": (576, 92),
    "RX 7800 XT": (624, 74),
    "RX 7700 XT": (432, 70),
    "RX 7600": (288, 43),
    "RX 6950 XT": (576, 47),
    "RX 6900 XT": (512, 46),
    "RX 6800 XT": (512, 41),
    "RX 6800": (512, 32),
    "RX 6700 XT": (384, 26),
    "RX 6600": (224, 18),
    "RX 9070 XT": (640, 97),
    "Radeon PRO W7900": (864, 122),
    "MI300X": (5300, 1300),
    # Intel Arc discrete
    "Arc A770": (560, 39),
    "Arc A750": (512, 34),
    "Arc A380": (186, 8),
    "Arc B580": (456, 58),
    # Apple Silicon (unified memory bandwidth, GPU FP16)
    "M1 Ultra": (800, 42),
    "M1 Max": (400, 21),
    "M1 Pro": (200, 10),
    "M1": (68, 5),
    "M2 Ultra": (800, 54),
    "M2 Max": (400, 27),
    "M2 Pro": (200, 14),
    "M2": (100, 7),
    "M3 Ultra": (819, 57),
    "M3 Max": (400, 28),
    "M3 Pro": (150, 14),
    "M3": (100, 8),
    "M4 Max": (546, 34),
    "M4 Pro": (273, 17),
    "M4": (120, 9),
}

# GPU name fragment -> memory bandwidth (GB/s) llama.cpp's decode measurably reaches on it, where that
# falls short of the share of peak that fits every other GPU (speed.GPU_BW_EFF). The M1 Ultra, two
# M1 Max dies joined by the first UltraFusion, reads 596 of its 800 GB/s: llama.cpp discussion #4167's
# F16 row (37.01 tokens/s, 13.5 GB read per token, the row most bound by bandwidth) less speed.py's
# fixed costs. The M1 Max's own F16 row reaches the usual 85% (340 GB/s), as the M2 Ultra's does: the
# shortfall is this chip's. Fitted to that one row; docs/speed-accuracy.md checks the others.
GPU_ATTAINABLE_GBS: dict[str, float] = {"M1 Ultra": 596.0}

# PCI "vendor:device" -> (name, integrated) for GPUs sysfs names only by id
PCI_GPUS: dict[str, tuple[str, bool]] = {
    "1002:744c": ("AMD Radeon RX 7900 XTX", False),
    "1002:7448": ("AMD Radeon PRO W7900", False),
    "1002:747e": ("AMD Radeon RX 7800 XT", False),
    "1002:7480": ("AMD Radeon RX 7600", False),
    "1002:73bf": ("AMD Radeon RX 6800 XT", False),
    "1002:73df": ("AMD Radeon RX 6700 XT", False),
    "1002:7550": ("AMD Radeon RX 9070 XT", False),
    "1002:15bf": ("AMD Radeon 780M", True),
    "1002:15c8": ("AMD Radeon 740M", True),
    "1002:150e": ("AMD Radeon 890M", True),
    "1002:1681": ("AMD Radeon 680M", True),
    "1002:164e": ("AMD Radeon Graphics (Raphael)", True),
    "8086:7d55": ("Intel Arc Graphics (Meteor Lake)", True),
    "8086:7dd5": ("Intel Graphics (Meteor Lake)", True),
    "8086:64a0": ("Intel Arc 140V (Lunar Lake)", True),
    "8086:a7a0": ("Intel Iris Xe Graphics", True),
    "8086:46a6": ("Intel Iris Xe Graphics", True),
    "8086:a780": ("Intel UHD Graphics 770", True),
    "8086:56a0": ("Intel Arc A770", False),
    "8086:56a1": ("Intel Arc A750", False),
    "8086:e20b": ("Intel Arc B580", False),
}

# PCI "vendor:device" -> (name, generation) for NPUs under /sys/class/accel or Windows PnP
PCI_NPUS: dict[str, tuple[str, str]] = {
    "8086:7d1d": ("Intel AI Boost NPU", "Meteor Lake NPU (NPU 3720)"),
    "8086:ad1d": ("Intel AI Boost NPU", "Arrow Lake NPU (NPU 3720)"),
    "8086:643e": ("Intel AI Boost NPU", "Lunar Lake NPU (NPU 4)"),
    "8086:b03e": ("Intel AI Boost NPU", "Panther Lake NPU (NPU 5)"),
    "1022:1502": ("AMD Ryzen AI NPU", "XDNA (Phoenix / Hawk Point)"),
    "1022:17f0": ("AMD Ryzen AI NPU", "XDNA 2 (Strix Point / Krackan Point)"),
    "17cb:a100": ("Qualcomm Cloud AI 100", "AIC100"),
}


def lookup(table: dict, name: str):
    """The value of the longest key found in name (case-insensitive), or None."""
    low = name.lower()
    hits = [k for k in table if k.lower() in low]
    return table[max(hits, key=len)] if hits else None
