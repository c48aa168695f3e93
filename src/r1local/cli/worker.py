"""`r1local worker`: lend this machine's memory and compute to an r1local on another PC."""

from __future__ import annotations

import os
import shutil
import sys

import typer

from .. import config
from ..errors import UsageError
from .app import command, err
from .serve import _is_loopback

DEFAULT_WORKER_PORT = 50052  # llama.cpp's rpc-server default


@command()
def worker(
    host: str = typer.Option(
        config.DEFAULT_HOST,
        "--host",
        help="Address to listen on. Anything but loopback lets others on that network run "
        "code here: use a private network or an SSH tunnel.",
    ),
    port: int = typer.Option(DEFAULT_WORKER_PORT, "--port", min=1, max=65535),
    cache: bool = typer.Option(
        False, "--cache", help="Keep received weights on disk, so a restarted model does not resend gigabytes."
    ),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads (default: physical cores)."),
    device: str | None = typer.Option(
        None, "--device", help="Only these llama.cpp devices, comma-separated (default: GPUs, else CPU)."
    ),
) -> None:
    """Run llama.cpp's rpc-server here, so `r1local serve/run --rpc THIS_HOST:PORT` on another PC
    can put model layers in this machine's memory.

    Example: r1local worker --host 192.168.1.20
    """
    from ..rpc import build

    folder = build.ensure_built(lambda line: err.print(line, markup=False, style="dim"))
    if not _is_loopback(host):
        err.print(
            f"warning: listening on {host}:{port}. llama.cpp's RPC protocol has no authentication or "
            "encryption: anyone who can reach this port can run code in this process and read what it "
            "holds. Use it only on a private network you trust, or keep the default 127.0.0.1 and reach "
            f"it through an SSH tunnel (ssh -N -L {port}:127.0.0.1:{port} THIS_HOST).",
            style="yellow",
            markup=False,
        )
    args = [
        str(folder / build.SERVER),
        "--host",
        host,
        "--port",
        str(port),
        "--threads",
        str(threads or config.default_threads()),
    ]
    if device:
        args += ["--device", device]
    if cache:
        args.append("--cache")
        os.environ.setdefault("LLAMA_CACHE", str(config.home() / "rpc-cache"))  # rpc-server adds /rpc
    address = "THIS_PC_ADDRESS" if host in ("0.0.0.0", "::") else host
    err.print(
        f"r1local worker on {host}:{port}: use it with --rpc {address}:{port} on the main PC (Ctrl-C stops it)",
        markup=False,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    stdbuf = shutil.which("stdbuf")  # rpc-server prints its device list through a buffered stdout
    try:
        if stdbuf:
            os.execv(stdbuf, [stdbuf, "-oL", *args])
        os.execv(args[0], args)  # this process becomes the worker: signals and exit codes are its own
    except OSError as error:
        raise UsageError(
            f"Could not start {args[0]}: {error.strerror}.", "Delete R1LOCAL_HOME/rpc to rebuild it."
        ) from None
