"""GPUs: NVIDIA (NVML, else nvidia-smi), AMD and Intel (DRM sysfs + KFD topology), Apple (unified
memory), Windows (CIM Win32_VideoController + the registry's 64-bit memory size)."""

from __future__ import annotations

import re

from . import tables
from .model import GPU, GiB
from .parse import as_list, read_int, uevent
from .probe import Probe

MiB = 1024**2
NVIDIA_FIELDS = "index,name,memory.total,memory.free,driver_version,compute_cap,pci.bus_id,clocks.max.memory"
NVIDIA_SMI = ["nvidia-smi", f"--query-gpu={NVIDIA_FIELDS}", "--format=csv,noheader,nounits"]
VENDORS = {"10de": "nvidia", "1002": "amd", "8086": "intel", "5143": "qualcomm", "106b": "apple"}


def _nvml_csv() -> str | None:
    """NVML's answer written as nvidia-smi would print it (plus a 9th column, the memory bus width),
    so one parser reads both and a snapshot stores both the same way."""
    import pynvml

    pynvml.nvmlInit()
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        rows = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
            clock = pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM)
            try:
                width = pynvml.nvmlDeviceGetMemoryBusWidth(h)
            except pynvml.NVMLError:
                width = ""
            rows.append(
                ", ".join(
                    str(x)
                    for x in (
                        i,
                        pynvml.nvmlDeviceGetName(h),
                        mem.total // MiB,
                        mem.free // MiB,
                        driver,
                        f"{major}.{minor}",
                        pynvml.nvmlDeviceGetPciInfo(h).busId,
                        clock,
                        width,
                    )
                )
            )
        return "\n".join(rows)
    finally:
        pynvml.nvmlShutdown()


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def parse_nvidia_csv(text: str, source: str) -> list[GPU]:
    gpus = []
    for line in text.strip().splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) < 4:
            continue
        cols += [""] * (9 - len(cols))
        _, name, total, free, driver, cc, _bus, clock, width = cols[:9]
        spec = tables.lookup(tables.GPU_SPECS, name)
        bandwidth = spec[0] if spec else None
        bus_bits, clock_mhz = _number(width), _number(clock)
        if bandwidth is None and bus_bits and clock_mhz:
            bandwidth = bus_bits / 8 * clock_mhz * 2 / 1000  # DDR: two transfers a clock
        total_b, free_b = _number(total), _number(free)
        gpus.append(
            GPU(
                name=name,
                vendor="nvidia",
                integrated=False,
                vram_total=int(total_b * MiB) if total_b else None,
                vram_free=int(free_b * MiB) if free_b else None,
                driver=driver or None,
                compute_capability=cc if _number(cc) else None,
                bandwidth_gbs=bandwidth,
                source=source,
            )
        )
    return gpus


def detect_nvidia(probe: Probe) -> list[GPU]:
    csv = probe.call("nvml", _nvml_csv)
    if csv:
        return parse_nvidia_csv(csv, "nvml")
    res = probe.run("nvidia-smi", NVIDIA_SMI)
    if res and res.rc == 0:
        return parse_nvidia_csv(res.stdout, "nvidia-smi")
    return []


def _gfx_target(version: int) -> str:
    """KFD gfx_target_version 110003 -> "gfx1103", 90010 -> "gfx90a"."""
    major, minor, step = version // 10000, version // 100 % 100, version % 100
    return f"gfx{major}{minor}{step:x}"


def _kfd_targets(probe: Probe) -> dict[int, str]:
    """PCI device id -> gfx target, from the ROCm kernel driver's topology."""
    root = "/sys/class/kfd/kfd/topology/nodes"
    targets = {}
    for node in probe.listdir(root) or []:
        props = dict(
            line.split(None, 1) for line in (probe.read(f"{root}/{node}/properties") or "").splitlines() if " " in line
        )
        version, device = int(props.get("gfx_target_version", 0)), int(props.get("device_id", 0))
        if version and device:
            targets[device] = _gfx_target(version)
    return targets


def detect_drm(probe: Probe, ram_total: int, skip_vendors: set[str]) -> list[GPU]:
    """AMD, Intel (and any other) GPUs the Linux kernel's DRM subsystem lists."""
    gpus = []
    kfd = None
    for card in probe.listdir("/sys/class/drm") or []:
        if not re.fullmatch(r"card\d+", card):
            continue
        dev = f"/sys/class/drm/{card}/device"
        ev = uevent(probe, f"{dev}/uevent")
        pci = ev.get("PCI_ID", "").lower()
        vendor = VENDORS.get(pci.split(":")[0])
        if not vendor or vendor in skip_vendors:
            continue
        known = tables.PCI_GPUS.get(pci)
        name = (
            (probe.read(f"{dev}/product_name") or "").strip()
            or (known[0] if known else None)
            or f"{vendor.upper() if vendor != 'intel' else 'Intel'} GPU ({pci})"
        )
        vram = read_int(probe, f"{dev}/mem_info_vram_total")
        used = read_int(probe, f"{dev}/mem_info_vram_used")
        gtt = read_int(probe, f"{dev}/mem_info_gtt_total")
        integrated = known[1] if known else (vendor == "intel" or (vram is not None and vram < 2 * GiB))
        free = vram - used if vram is not None and used is not None else None
        if integrated:
            # an iGPU's carve-out is small; it works from system RAM through GTT (half of RAM by default)
            share = max(vram or 0, gtt or ram_total // 2)
            vram, free = share, None
        cc = None
        if vendor == "amd":
            kfd = kfd if kfd is not None else _kfd_targets(probe)
            cc = kfd.get(int(pci.split(":")[1], 16))
        spec = tables.lookup(tables.GPU_SPECS, name)
        gpus.append(
            GPU(
                name=name,
                vendor=vendor,
                integrated=integrated,
                vram_total=vram,
                vram_free=free,
                driver=ev.get("DRIVER"),
                compute_capability=cc,
                bandwidth_gbs=spec[0] if spec else None,
                pci_id=pci,
                source="sysfs",
            )
        )
    return gpus


def apple_gpu(chip: str, ram_total: int) -> GPU:
    """Apple Silicon: one GPU on unified memory. Metal lets one process keep about 2/3 of RAM
    resident on smaller Macs and about 3/4 from 64 GB up (recommendedMaxWorkingSetSize)."""
    budget = int(ram_total * (0.75 if ram_total >= 64 * GiB else 2 / 3))
    spec = tables.lookup(tables.GPU_SPECS, chip)
    return GPU(
        name=f"{chip} GPU",
        vendor="apple",
        integrated=True,
        vram_total=budget,
        bandwidth_gbs=spec[0] if spec else None,
        source="sysctl",
    )


def windows_gpus(cim: dict, skip_vendors: set[str]) -> list[GPU]:
    # AdapterRAM is a 32-bit field (caps at 4 GB); the driver's registry key has the real size
    sizes = {
        (m.get("DriverDesc") or "").strip(): m.get("HardwareInformation.qwMemorySize")
        for m in as_list(cim.get("gpu_memory"))
    }
    gpus = []
    for c in as_list(cim.get("gpus")):
        name = (c.get("Name") or "").strip()
        m = re.search(r"VEN_([0-9A-F]{4})&DEV_([0-9A-F]{4})", c.get("PNPDeviceID") or "", re.IGNORECASE)
        pci = f"{m.group(1)}:{m.group(2)}".lower() if m else None
        vendor = VENDORS.get(pci.split(":")[0]) if pci else None
        vendor = vendor or next(
            (
                v
                for k, v in (
                    ("nvidia", "nvidia"),
                    ("radeon", "amd"),
                    ("amd", "amd"),
                    ("intel", "intel"),
                    ("qualcomm", "qualcomm"),
                    ("adreno", "qualcomm"),
                )
                if k in name.lower()
            ),
            None,
        )
        if not vendor or vendor in skip_vendors:
            continue  # Microsoft Basic Display Adapter, remote displays
        known = tables.PCI_GPUS.get(pci or "")
        integrated = (
            known[1]
            if known
            else (
                vendor in ("intel", "qualcomm")
                and "Arc(TM) A" not in name
                and "Arc(TM) B" not in name
                or vendor == "amd"
                and re.search(r"Radeon\(TM\) (\d{3}M )?Graphics|Vega", name) is not None
            )
        )
        size = sizes.get(name) or c.get("AdapterRAM")
        spec = tables.lookup(tables.GPU_SPECS, name.replace("(TM)", "").replace("(R)", ""))
        gpus.append(
            GPU(
                name=name,
                vendor=vendor,
                integrated=integrated,
                vram_total=None if integrated or not size else int(size),
                driver=c.get("DriverVersion"),
                bandwidth_gbs=spec[0] if spec else None,
                pci_id=pci,
                source="cim",
            )
        )
    return gpus
