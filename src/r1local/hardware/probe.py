"""The one door through which hardware detection reads the machine, and machine snapshots.

Detection never touches the OS directly: it reads files, lists directories, runs commands and
asks in-process libraries (psutil, NVML, llama.cpp) through a Probe. A LiveProbe reads this
machine; a RecordingProbe wraps one and keeps every answer; a ReplayProbe answers from a snapshot
file, so detection of any machine can be replayed anywhere. The format is documented in
docs/snapshot-format.md; keep it stable (bump FORMAT only for incompatible changes).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError

FORMAT = 1
DEFAULT_TIMEOUT = 1.5  # seconds: `r1local hw` must answer in under two


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str


class Probe:
    """Read-only access to one machine. Every method answers None when the thing is absent."""

    def platform(self) -> dict[str, str]:
        """{"system": "Linux"|"Darwin"|"Windows", "machine": "x86_64"|"arm64"|"AMD64"|..., "release": ...}"""
        raise NotImplementedError

    def read(self, path: str) -> str | None:
        raise NotImplementedError

    def listdir(self, path: str) -> list[str] | None:
        raise NotImplementedError

    def run(self, name: str, argv: list[str], timeout: float = DEFAULT_TIMEOUT) -> CommandResult | None:
        """Run a command known by a stable `name` (the snapshot key). None: not installed or hung."""
        raise NotImplementedError

    def call(self, name: str, func: Callable[[], Any]) -> Any:
        """An in-process query (psutil, NVML, llama.cpp) whose JSON-able answer is recorded
        under `name`. func returns None, or raises, when the library is missing."""
        raise NotImplementedError


class LiveProbe(Probe):
    def __init__(self, root: str = "/"):
        self.root = Path(root)

    def _path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def platform(self) -> dict[str, str]:
        return {"system": platform.system(), "machine": platform.machine(), "release": platform.release()}

    def read(self, path: str) -> str | None:
        try:
            return self._path(path).read_text(errors="replace")
        except OSError:
            return None

    def listdir(self, path: str) -> list[str] | None:
        try:
            return sorted(os.listdir(self._path(path)))
        except OSError:
            return None

    def run(self, name: str, argv: list[str], timeout: float = DEFAULT_TIMEOUT) -> CommandResult | None:
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                errors="replace",
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return CommandResult(done.returncode, done.stdout)

    def call(self, name: str, func: Callable[[], Any]) -> Any:
        try:
            return func()
        except Exception:  # noqa: BLE001  (a missing or broken optional library is "absent", never a crash
            return None


class RecordingProbe(Probe):
    """Answers from `inner` and keeps every answer, absences included, for save()."""

    def __init__(self, inner: Probe):
        self.inner = inner
        self.data: dict[str, Any] = {
            "format": FORMAT,
            "platform": None,
            "files": {},
            "dirs": {},
            "commands": {},
            "calls": {},
        }

    def platform(self) -> dict[str, str]:
        self.data["platform"] = self.inner.platform()
        return self.data["platform"]

    def read(self, path: str) -> str | None:
        self.data["files"][path] = value = self.inner.read(path)
        return value

    def listdir(self, path: str) -> list[str] | None:
        self.data["dirs"][path] = value = self.inner.listdir(path)
        return value

    def run(self, name: str, argv: list[str], timeout: float = DEFAULT_TIMEOUT) -> CommandResult | None:
        result = self.inner.run(name, argv, timeout)
        self.data["commands"][name] = (
            None if result is None else {"argv": argv, "rc": result.rc, "stdout": result.stdout}
        )
        return result

    def call(self, name: str, func: Callable[[], Any]) -> Any:
        self.data["calls"][name] = value = self.inner.call(name, func)
        return value

    def save(self, path: str | Path) -> None:
        """Write the snapshot (through a temporary file, so a failed save leaves no half file)."""
        text = json.dumps(self.data, indent=1, default=str)
        tmp = Path(f"{path}.tmp")
        tmp.write_text(text + "\n")
        tmp.replace(path)


class ReplayProbe(Probe):
    """Answers from a snapshot: anything the snapshot does not mention is absent."""

    def __init__(self, data: dict[str, Any]):
        if data.get("format") != FORMAT:
            raise UsageError(
                f"Snapshot format {data.get('format')!r} is not supported (this r1local reads format {FORMAT}).",
                "Record the snapshot again with `r1local hw --save-snapshot FILE`.",
            )
        self.data = data

    @classmethod
    def load(cls, path: str | Path) -> ReplayProbe:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UsageError(f"Snapshot file not found: {path}", "Check the path.") from None
        except (OSError, ValueError) as e:
            raise UsageError(f"{path} is not a readable JSON snapshot: {e}", "See docs/snapshot-format.md.") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path} is not a snapshot (a JSON object is expected).", "See docs/snapshot-format.md.")
        return cls(data)

    def platform(self) -> dict[str, str]:
        return {"system": "Linux", "machine": "x86_64", "release": "", **(self.data.get("platform") or {})}

    def read(self, path: str) -> str | None:
        return self.data.get("files", {}).get(path)

    def listdir(self, path: str) -> list[str] | None:
        listed = self.data.get("dirs", {}).get(path)
        return sorted(listed) if listed is not None else None

    def run(self, name: str, argv: list[str], timeout: float = DEFAULT_TIMEOUT) -> CommandResult | None:
        entry = self.data.get("commands", {}).get(name)
        if entry is None:
            return None
        return CommandResult(int(entry.get("rc", 0)), entry.get("stdout", ""))

    def call(self, name: str, func: Callable[[], Any]) -> Any:
        return self.data.get("calls", {}).get(name)
