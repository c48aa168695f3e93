"""Room on disk for a download: what it still needs, what the pulls already running (in this
process or another) still have to write, and a margin that stays free, since a full disk breaks
more than the download (the system, other programs, the cache's own index).

Each pull in progress leaves a reservation file under the cache's .locks folder naming the files
it writes; what it still needs is read from their partial files' sizes, so a pull that has
written half its bytes holds only the other half. A reservation whose process is gone counts
for nothing. The check and the reservation happen under one lock, so two pulls started at once
see each other.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from filelock import FileLock

from . import config, store
from .errors import InsufficientDisk

MARGIN_BYTES = 1 << 30  # kept free after every download


def _folder() -> Path:
    return config.hf_cache() / ".locks" / "r1local-space"


def still_needed(parts: list[tuple[int, Path, Path]]) -> int:
    """Bytes still to write for (size, partial file, final file) parts."""
    need = 0
    for size, partial, final in parts:
        if not final.is_file():
            need += max(0, size - (partial.stat().st_size if partial.is_file() else 0))
    return need


def _others() -> int:
    total = 0
    for reservation in _folder().glob("*.json"):
        try:
            held = json.loads(reservation.read_text())
            if psutil.pid_exists(held["pid"]):
                total += still_needed([(size, Path(partial), Path(final)) for size, partial, final in held["parts"]])
        except (OSError, ValueError, KeyError, TypeError):  # gone meanwhile, or not ours to read
            continue
    return total


@contextmanager
def reserved(parts: list[tuple[int, Path, Path]]) -> Iterator[None]:
    """Hold room for `parts` (size, partial file, final file) while the block downloads them;
    InsufficientDisk when the disk lacks it, the other pulls' needs and the margin."""
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    need = still_needed(parts)
    mine = folder / f"{os.getpid()}-{uuid.uuid4().hex}.json"
    with FileLock(folder.with_suffix(".lock"), timeout=30):
        others, free = _others(), store.free_space(config.hf_cache())
        if need and need + others + MARGIN_BYTES > free:
            running = f", the pulls already running {store.human_size(others)} more" if others else ""
            raise InsufficientDisk(
                f"Not enough disk space: the download needs {store.human_size(need)}{running}, and "
                f"{store.human_size(MARGIN_BYTES)} stays free; {config.hf_cache()} has {store.human_size(free)} free.",
                "Free some space (r1local list / r1local rm NAME), or point HF_HUB_CACHE at a bigger disk.",
            )
        mine.write_text(
            json.dumps(
                {"pid": os.getpid(), "parts": [[size, str(partial), str(final)] for size, partial, final in parts]}
            )
        )
    try:
        yield
    finally:
        mine.unlink(missing_ok=True)
