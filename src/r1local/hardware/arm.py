"""Names for ARM CPUs: Linux lists their cores only by MIDR implementer and part numbers
(/proc/cpuinfo's `CPU implementer` / `CPU part`), so the core names come from this table and the
machine's name from the board (cpuinfo's `Model` line, else the device tree's model and SoC)."""

from __future__ import annotations

from collections import Counter

from .probe import Probe

# (implementer, part) -> core name; from the Arm, Apple and Qualcomm MIDR registries as Linux prints them
CORES: dict[tuple[int, int], str] = {
    **{
        (0x41, part): name
        for part, name in {
            0xD03: "Cortex-A53",
            0xD04: "Cortex-A35",
            0xD05: "Cortex-A55",
            0xD07: "Cortex-A57",
            0xD08: "Cortex-A72",
            0xD09: "Cortex-A73",
            0xD0A: "Cortex-A75",
            0xD0B: "Cortex-A76",
            0xD0C: "Neoverse-N1",
            0xD0D: "Cortex-A77",
            0xD0E: "Cortex-A76AE",
            0xD40: "Neoverse-V1",
            0xD41: "Cortex-A78",
            0xD42: "Cortex-A78AE",
            0xD44: "Cortex-X1",
            0xD46: "Cortex-A510",
            0xD47: "Cortex-A710",
            0xD48: "Cortex-X2",
            0xD49: "Neoverse-N2",
            0xD4A: "Neoverse-E1",
            0xD4B: "Cortex-A78C",
            0xD4D: "Cortex-A715",
            0xD4E: "Cortex-X3",
            0xD4F: "Neoverse-V2",
            0xD80: "Cortex-A520",
            0xD81: "Cortex-A720",
            0xD82: "Cortex-X4",
            0xD84: "Neoverse-V3",
            0xD85: "Cortex-X925",
            0xD87: "Cortex-A725",
            0xD8E: "Neoverse-N3",
        }.items()
    },
    **{
        (0x61, part): name
        for part, name in {
            0x022: "Apple M1 Icestorm",
            0x023: "Apple M1 Firestorm",
            0x024: "Apple M1 Pro Icestorm",
            0x025: "Apple M1 Pro Firestorm",
            0x028: "Apple M1 Max Icestorm",
            0x029: "Apple M1 Max Firestorm",
            0x032: "Apple M2 Blizzard",
            0x033: "Apple M2 Avalanche",
            0x034: "Apple M2 Pro Blizzard",
            0x035: "Apple M2 Pro Avalanche",
            0x038: "Apple M2 Max Blizzard",
            0x039: "Apple M2 Max Avalanche",
        }.items()
    },
    (0x51, 0x001): "Qualcomm Oryon",
    (0x51, 0x802): "Kryo 385 Gold",
    (0x51, 0x803): "Kryo 385 Silver",
    (0x51, 0x804): "Kryo 485 Gold",
    (0x51, 0x805): "Kryo 485 Silver",
    (0x4E, 0x004): "NVIDIA Carmel",
    (0xC0, 0xAC3): "Ampere-1",
    (0xC0, 0xAC4): "Ampere-1a",
    (0x48, 0xD01): "HiSilicon TaiShan v110",
    (0x46, 0x001): "Fujitsu A64FX",
}
IMPLEMENTERS = {0x41: "Arm", 0x61: "Apple", 0x51: "Qualcomm", 0x4E: "NVIDIA", 0xC0: "Ampere", 0x48: "HiSilicon"}
# efficiency cores: on big.LITTLE chips llama.cpp decodes faster on the big cores alone
LITTLE = {
    "Cortex-A35",
    "Cortex-A53",
    "Cortex-A55",
    "Cortex-A510",
    "Cortex-A520",
    "Apple M1 Icestorm",
    "Apple M1 Pro Icestorm",
    "Apple M1 Max Icestorm",
    "Apple M2 Blizzard",
    "Apple M2 Pro Blizzard",
    "Apple M2 Max Blizzard",
}
SOC_VENDORS = {
    "apple": "Apple",
    "brcm": "Broadcom",
    "rockchip": "Rockchip",
    "amlogic": "Amlogic",
    "allwinner": "Allwinner",
    "mediatek": "MediaTek",
    "qcom": "Qualcomm",
    "nvidia": "NVIDIA",
    "sophgo": "Sophgo",
}


def _int(text: str | None) -> int | None:
    try:
        return int(text or "", 0)
    except ValueError:
        return None


def core_name(implementer: str | None, part: str | None) -> str | None:
    imp, num = _int(implementer), _int(part)
    if imp is None or num is None:
        return None
    return CORES.get((imp, num)) or f"{IMPLEMENTERS.get(imp, 'ARM')} core {num:#05x} (implementer {imp:#x})"


def cores(procs: list[dict[str, str]]) -> list[str]:
    """The core name of each logical CPU, in cpuinfo order (empty when cpuinfo lists no MIDR)."""
    names = [core_name(p.get("CPU implementer"), p.get("CPU part")) for p in procs]
    return [n for n in names if n] if all(names) else []


def _dt_text(probe: Probe, name: str) -> str | None:
    raw = probe.read(f"/proc/device-tree/{name}") or probe.read(f"/sys/firmware/devicetree/base/{name}")
    return raw.replace("\x00", "\n").strip() or None if raw else None


def board(probe: Probe, first: dict[str, str]) -> tuple[str | None, str | None]:
    """(board model, SoC): ("Raspberry Pi 5 Model B Rev 1.0", "Broadcom BCM2712"); Nones where unknown."""
    model = first.get("Model") or _dt_text(probe, "model")
    # compatible strings run from the board to the SoC ("rockchip,rk3588"); generic ones carry no number
    chips = [
        c for c in (_dt_text(probe, "compatible") or "").splitlines() if "," in c and any(ch.isdigit() for ch in c)
    ]
    soc = None
    if chips:
        vendor, chip = chips[-1].split(",", 1)
        soc = f"{SOC_VENDORS.get(vendor, vendor)} {chip.upper()}"
    return model, soc


def kinds(names: list[str]) -> list[str]:
    """The distinct core names, big cores first."""
    return sorted(set(names), key=lambda n: (n in LITTLE, names.index(n)))


def describe(names: list[str]) -> str:
    """["Cortex-A76"] * 4 + ["Cortex-A55"] * 4 -> "4x Cortex-A76 + 4x Cortex-A55" (big cores first)."""
    counts = Counter(names)
    return " + ".join(f"{counts[n]}x {n}" for n in kinds(names))


def big_cores(names: list[str]) -> int | None:
    """How many cores are not efficiency cores, on a chip that has both kinds (else None)."""
    big = sum(1 for n in names if n not in LITTLE)
    return big if 0 < big < len(names) else None
