"""Small parsers for the text formats detection reads (procfs, sysfs, sysctl, PowerShell JSON)."""

from __future__ import annotations

from .probe import Probe


def key_values(text: str, sep: str = ":") -> dict[str, str]:
    """ "key: value" lines -> dict (later keys win)."""
    out = {}
    for line in text.splitlines():
        if sep in line:
            key, value = line.split(sep, 1)
            out[key.strip()] = value.strip()
    return out


def cpu_list(text: str) -> list[int]:
    """ "0-3,8,10-11" -> [0, 1, 2, 3, 8, 10, 11]"""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if "-" in part:
            lo, hi = part.split("-")
            cpus.extend(range(int(lo), int(hi) + 1))
        elif part.strip():
            cpus.append(int(part))
    return cpus


def as_list(value) -> list:
    """PowerShell's ConvertTo-Json writes a one-element array as a bare object."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def uevent(probe: Probe, path: str) -> dict[str, str]:
    """A sysfs uevent file (DRIVER=..., PCI_ID=...) as a dict."""
    return key_values(probe.read(path) or "", "=")


def read_int(probe: Probe, path: str) -> int | None:
    text = (probe.read(path) or "").strip()
    return int(text) if text.isdigit() else None
