"""The record a running `r1local serve` keeps in R1LOCAL_HOME (serve.pid): its pid, the process's
start time, its user and its URL. Commands find the server through it, and `stop` acts only on the
very process it names: a pid reused by another program after a crash has another start time."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from . import config
from .errors import UsageError

START_TIME_TOLERANCE_S = 0.05  # the kernel's start time is in clock ticks; the same process reads the same value


def record_file() -> Path:
    return config.home() / "serve.pid"


def _uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


@dataclass(frozen=True)
class ServerRecord:
    pid: int
    started: float  # psutil's create_time(): seconds since the epoch
    uid: int | None
    url: str

    def process(self) -> psutil.Process | None:
        """The recorded process if it still runs: same pid, same start time, same user; else None."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.started) > START_TIME_TOLERANCE_S:
                return None
            if self.uid is not None and process.uids().real != self.uid:
                return None
            return process
        except (psutil.Error, AttributeError):
            return None


def read() -> ServerRecord | None:
    """The record, or None when there is none; a file that is not r1local's record is one clear error."""
    path = record_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise _damaged(path, str(getattr(error, "strerror", None) or error)) from None
    try:
        data = json.loads(text)
        record = ServerRecord(pid=data["pid"], started=data["started"], uid=data.get("uid"), url=data["url"])
        if not (
            isinstance(record.pid, int)
            and isinstance(record.started, (int, float))
            and isinstance(record.url, str)
            and (record.uid is None or isinstance(record.uid, int))
        ):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise _damaged(path, "not the JSON record r1local serve writes") from None
    return record


def _damaged(path: Path, why: str) -> UsageError:
    return UsageError(
        f"The server record {path} is unreadable ({why}).",
        "If an r1local serve still runs, end it yourself (Ctrl-C, or kill its pid); then delete the file.",
    )


def live() -> ServerRecord | None:
    """The record of a server that still runs; a stale record (its process gone) is removed."""
    record = read()
    if record is not None and record.process() is None:
        record_file().unlink(missing_ok=True)
        return None
    return record


def claim(url: str) -> ServerRecord | None:
    """Record this process as the server at `url`, unless another live server holds the record
    (then None: that one stays the server commands find)."""
    try:
        if live() is not None:
            return None
    except UsageError:
        pass  # an unreadable record names no server: replace it
    me = psutil.Process()
    record = ServerRecord(pid=me.pid, started=me.create_time(), uid=_uid(), url=url)
    draft = record_file().with_name(f".serve-{me.pid}.pid")
    with config.open_private(draft, "w") as file:
        file.write(json.dumps(asdict(record)))
    os.replace(draft, record_file())
    return record


def release(record: ServerRecord) -> None:
    """Remove the record when it is still this server's (another may have taken over meanwhile)."""
    try:
        if read() == record:
            record_file().unlink(missing_ok=True)
    except UsageError:
        pass
