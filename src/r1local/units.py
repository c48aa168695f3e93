"""How every command writes amounts: sizes in binary units, always labelled (a file, RAM and GPU memory
all in GiB or MiB), and counts with the noun in the right number ("1 thread", "2 threads")."""

from __future__ import annotations


def human_size(n: float) -> str:
    """Bytes as B, KiB, MiB or GiB: 253.1 MiB, 4.2 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`count` and its noun: plural(1, "model") -> "1 model", plural(2, "model") -> "2 models"."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
