"""NPUs: Linux accel devices (intel_vpu, amdxdna, qaic), Windows compute accelerators, Apple's ANE."""

from __future__ import annotations

import re

from . import tables
from .model import NPU
from .parse import as_list, uevent
from .probe import Probe

DRIVER_VENDORS = {"intel_vpu": "intel", "amdxdna": "amd", "qaic": "qualcomm"}


def linux_npus(probe: Probe) -> list[NPU]:
    npus = []
    for dev in probe.listdir("/sys/class/accel") or []:
        ev = uevent(probe, f"/sys/class/accel/{dev}/device/uevent")
        driver, pci = ev.get("DRIVER"), ev.get("PCI_ID", "").lower()
        vendor = DRIVER_VENDORS.get(driver or "")
        if not vendor:
            continue  # other accelerators (Habana Gaudi...) are outside llama.cpp's world
        name, generation = tables.PCI_NPUS.get(pci, (f"{vendor.upper()} NPU ({pci or driver})", None))
        npus.append(NPU(name, vendor, generation, driver, pci or None, "sysfs"))
    return npus


def windows_npus(cim: dict) -> list[NPU]:
    npus = []
    for d in as_list(cim.get("npus")):
        name = (d.get("FriendlyName") or "").strip()
        m = re.search(r"VEN_([0-9A-F]{4})&DEV_([0-9A-F]{4})", d.get("InstanceId") or "", re.IGNORECASE)
        pci = f"{m.group(1)}:{m.group(2)}".lower() if m else None
        low = f"{name} {d.get('Manufacturer') or ''}".lower()
        vendor = next(
            (
                v
                for k, v in (("intel", "intel"), ("amd", "amd"), ("qualcomm", "qualcomm"), ("hexagon", "qualcomm"))
                if k in low
            ),
            "unknown",
        )
        generation = tables.PCI_NPUS.get(pci or "", (None, None))[1]
        if vendor == "qualcomm" and not generation:
            generation = "Hexagon NPU"
        npus.append(NPU(name, vendor, generation, None, pci, "pnp"))
    return npus


def apple_npu(chip: str) -> NPU:
    return NPU("Apple Neural Engine", "apple", f"{chip} (16-core)", None, None, "sysctl")
