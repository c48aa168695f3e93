"""Models that stay loaded: `serve --detach` in the background, `ps` (what is loaded) and `stop`
(unload a model, or stop the recorded server); the one place commands find their server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import typer
from rich.table import Table

from .. import config, locate, server_record, store, trust
from ..client import ResidentServer
from ..errors import R1Error, UsageError
from ..names import Kind, ModelAddress
from ..units import human_size, plural
from .app import command, err, out

STARTUP_TIMEOUT_S = 60.0  # the port answers before models load; this is only Python starting


def log_file() -> Path:
    return config.home() / "serve.log"


def detach(argv: list[str], url: str) -> None:
    """Start `r1local serve` with the same arguments (less --detach) in its own session, its output
    in the log file; succeed only once that very child answers as this user's server (another
    server that took the port first does not count), else fail with the log's last lines."""
    running = server_record.live()
    if running is not None:
        raise UsageError(
            f"r1local serve already runs (pid {running.pid}, {running.url}).", "Stop it first with: r1local stop"
        )
    args = [a for a in argv if a not in ("--detach", "-d")]
    with config.open_private(log_file()) as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "r1local", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while trust.probe(url).pid != process.pid:
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            tail = log_file().read_text(errors="replace").strip().splitlines()[-3:]
            raise R1Error(
                "r1local serve did not start: " + (" ".join(tail) or "no output."), f"The whole log: {log_file()}"
            )
        time.sleep(0.1)
    out.print(f"r1local serve runs in the background (pid {process.pid}) on {url}", markup=False)
    err.print(f"Log: {log_file()}. Stop it with: r1local stop", style="dim", markup=False)


def find_server() -> locate.Lookup:
    """Where commands find their server (locate.py), saying so in one line when what answered was
    refused; the line naming a server other than the default one comes when it is used (`announce`)."""
    found = locate.find()
    if found.refused:
        err.print(f"warning: {found.refused}", style="yellow", markup=False)
    return found


def announce(found: locate.Lookup) -> None:
    if found.note:
        err.print(found.note, style="dim", markup=False)


def _server_or_fail() -> ResidentServer:
    found = find_server()
    if found.server is None:
        raise UsageError(
            f"No r1local serve of yours answers at {found.url}, so no model is loaded.",
            "Start one with: r1local serve --detach",
        )
    announce(found)
    return found.server


@command()
def ps(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The models a running r1local serve holds in memory, where, and until when.

    Example: r1local ps
    """
    server = _server_or_fail()
    try:
        loaded = server.running()
    finally:
        server.close()
    if as_json:
        out.print_json(json.dumps(loaded))
        return
    if not loaded:
        err.print("No model is loaded. The first request for one loads it.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"):
        table.add_column(column, no_wrap=column == "NAME")
    for m in loaded:
        table.add_row(
            m["name"],
            human_size(m["size"]),
            _processor(m["size"], m.get("size_vram", 0)),
            str(m.get("context_length", "?")),
            _until(m["expires_at"]),
        )
    out.print(table)
    for m in loaded:  # a model spread over RPC workers: each worker's state; a draft model
        if m.get("draft"):
            err.print(f"{m['name']} drafts with {m['draft']} (counted in its size)", markup=False, style="dim")
        if workers := m.get("workers"):
            states = ", ".join(f"{w['endpoint']} {w['status']}" for w in workers)
            err.print(
                f"{m['name']} over RPC workers: {states}" + (f" ({m['error']})" if m.get("error") else ""),
                markup=False,
                style="yellow" if m.get("error") else None,
            )


def _processor(size: int, in_vram: int) -> str:
    if not in_vram:
        return "100% CPU"
    gpu = round(100 * in_vram / size)
    return "100% GPU" if gpu >= 100 else f"{100 - gpu}%/{gpu}% CPU/GPU"


def _until(expires_at: str) -> str:
    when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if seconds > 365 * 86400:
        return "forever"
    if seconds < 60:
        return "less than a minute from now"
    minutes = int(seconds // 60)
    return f"{plural(minutes, 'minute')} from now" if minutes < 120 else f"{minutes // 60} hours from now"


@command()
def stop(model: str | None = typer.Argument(None, help="A loaded model to unload (see r1local ps).")) -> None:
    """Unload a model from the running server, or without a model, stop the server (background or not).

    Example: r1local stop r1:7b
    """
    if model is None:
        _stop_server()
        return
    address = ModelAddress.parse(model, allow_paths=True)
    server = _server_or_fail()
    try:
        if not any(is_loaded_as(address, m) for m in server.running()):
            raise UsageError(f"{model} is not loaded.", "See what is: r1local ps")
        server.unload(address.for_server)
    finally:
        server.close()
    out.print(f"Unloaded {model}.")


def is_loaded_as(address: ModelAddress, loaded: dict) -> bool:
    """Whether a model /api/ps lists is the one `address` means: by its name (deepseek-r1:7b is
    r1:7b), or a file by the digest the server gives it (whatever name it was loaded under)."""
    if address.kind is Kind.PATH:
        return (
            address.path is not None
            and address.on_disk
            and loaded.get("digest") == store.file_digest(Path(address.path))
        )
    names = {address.text, address.served_name}
    try:
        return bool(names & {loaded["name"], ModelAddress.parse(loaded["name"]).served_name})
    except R1Error:
        return False


def _stop_server() -> None:
    """End the recorded server: only the very process the record names (pid, start time, user)."""
    record = server_record.read()
    if record is None:
        raise UsageError(
            "No r1local serve is recorded as running (none was started on this PC by this user).",
            "A server started elsewhere stops with Ctrl-C in its terminal.",
        )
    process = record.process()
    if process is None:
        server_record.record_file().unlink(missing_ok=True)
        raise UsageError(
            f"r1local serve (pid {record.pid}) no longer runs; removed its stale record.", "Nothing was stopped."
        )
    process.terminate()
    try:
        process.wait(timeout=15)
    except psutil.TimeoutExpired:
        process.kill()
    server_record.record_file().unlink(missing_ok=True)
    out.print(f"Stopped r1local serve (pid {record.pid}).")
