"""`serve`: the OpenAI- and Ollama-compatible local API."""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import logging
import os
import socket
import sys
import threading
from pathlib import Path

import typer

from .. import config, server_record
from ..engine.upstream import parse_spec
from ..errors import UsageError
from ..names import ModelAddress
from ..resolve import resolve
from ..units import plural
from . import resident
from .app import command, err
from .backend import draft_file
from .options import (
    CTX_OPT,
    DRAFT_MAX_OPT,
    DRAFT_MIN_OPT,
    DRAFT_OPT,
    DRAFT_P_MIN_OPT,
    GPU_OPT,
    KV_TYPE_OPT,
    RPC_OPT,
    SPEC_OPT,
    SPLIT_OPT,
    THINK_BUDGET_OPT,
    THREADS_OPT,
    parse_split,
    speculation,
)

GRACE_S = 5  # streams still running after a stop signal get this long to finish
SHUTDOWN_DEADLINE_S = 10  # then unloading gets the rest; past this the process exits regardless


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _client_url(host: str, port: int) -> str:
    """The URL commands on this PC reach a server bound to `host` at."""
    url_host = f"[{host}]" if ":" in host else ("127.0.0.1" if host in ("0.0.0.0", "::") else host)
    return f"http://{url_host}:{port}"


def upstreams(specs: list[str]) -> tuple[tuple[str, str], ...]:
    """--upstream NAME=URL options over the config file's [upstreams] table (same NAME: the option wins)."""
    found = dict(parse_spec(f"{name}={url}") for name, url in config.saved_settings().get("upstreams", {}).items())
    found |= dict(parse_spec(spec) for spec in specs)
    return tuple(found.items())


def parse_alias(spec: str) -> tuple[str, str]:
    """ "claude-sonnet-4=r1:7b" -> ("claude-sonnet-4", "r1:7b")."""
    name, sep, model = (part.strip() for part in spec.partition("="))
    if not sep or not name or not model:
        raise UsageError(f"Not an alias: {spec!r}.", "Write NAME=MODEL, e.g. --alias claude-sonnet-4=r1:7b.")
    return name, model


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is printed or loaded, so a busy port is one
    clear line instead of a banner followed by uvicorn's raw error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise UsageError(
                f"Port {port} on {host} is already in use (another r1local serve?); "
                f"stop that program or pick another port with --port {port + 1}."
            ) from None
        raise UsageError(f"Cannot listen on {host}:{port}: {error.strerror}.", "Check --host and --port.") from None
    return sock


@command()
def serve(
    models: list[str] | None = typer.Argument(
        None,
        help="Models to load at start: catalog names (r1:7b) or .gguf paths (served by file stem); "
        "NAME@openvino runs one on OpenVINO.",
    ),
    host: str = typer.Option(
        config.DEFAULT_HOST, "--host", help="Address to bind; 0.0.0.0 exposes the API to the network."
    ),
    port: int = typer.Option(config.DEFAULT_PORT, "--port", min=0, max=65535, help="TCP port to listen on."),
    parallel: int = typer.Option(4, "--parallel", min=1, max=256, help="Requests generated at once per model (slots)."),
    max_queue: int | None = typer.Option(
        None,
        "--max-queue",
        min=0,
        max=100_000,
        help="Requests waiting beyond the slots before 503 (default 4 per slot).",
    ),
    ctx: int | None = CTX_OPT,
    threads: int | None = THREADS_OPT,
    gpu_layers: int | None = GPU_OPT,
    tensor_split: str | None = SPLIT_OPT,
    rpc: str | None = RPC_OPT,
    kv_type: str | None = KV_TYPE_OPT,
    spec: str | None = SPEC_OPT,
    draft_max: int = DRAFT_MAX_OPT,
    draft_min: int = DRAFT_MIN_OPT,
    draft_p_min: float = DRAFT_P_MIN_OPT,
    draft: str | None = DRAFT_OPT,
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        help="Require 'Authorization: Bearer KEY'. Other local users can read a key given here in `ps`: "
        "prefer the R1LOCAL_API_KEY environment variable or --api-key-file.",
    ),
    api_key_file: Path | None = typer.Option(
        None, "--api-key-file", help="Read the API key from this file (its first line)."
    ),
    cors_origin: list[str] | None = typer.Option(
        None,
        "--cors-origin",
        help="Allow browser pages from this origin too, * a wildcard: 'https://*.example.com' (repeatable; or "
        "R1LOCAL_ORIGINS=a,b). Local pages (http://localhost:*) and desktop apps (tauri://, app://, file://, "
        "vscode-webview://) are allowed, as Ollama allows them.",
    ),
    allowed_host: list[str] | None = typer.Option(
        None,
        "--allowed-host",
        help="Answer requests addressed to this host name too (repeatable; or R1LOCAL_ALLOWED_HOSTS=a,b). "
        "IP addresses and localhost always work; other names are refused against DNS rebinding.",
    ),
    keep_alive: str = typer.Option("5m", "--keep-alive", help="Unload a model idle this long (30s, 5m, 1h; -1 never)."),
    max_loaded: int = typer.Option(
        1, "--max-loaded", min=1, max=64, help="Models held in memory at once (the least recently used leaves)."
    ),
    max_body: int = typer.Option(
        4 * 1024 * 1024, "--max-body", min=1024, max=1024**3, help="Largest request body in bytes."
    ),
    no_trim: bool = typer.Option(
        False, "--no-trim", help="Refuse a chat longer than the context (400) instead of dropping its oldest turns."
    ),
    strict: bool = typer.Option(False, "--strict", help="Refuse request fields the server does not know (400)."),
    think_budget: int | None = THINK_BUDGET_OPT,
    upstream: list[str] | None = typer.Option(
        None,
        "--upstream",
        help="Front an OpenAI-compatible server as NAME=URL (repeatable; also [upstreams] "
        "in ~/.r1local/config.toml): its models are served as NAME/MODEL.",
    ),
    alias: list[str] | None = typer.Option(
        None,
        "--alias",
        help="Serve requests naming NAME with MODEL, as NAME=MODEL (repeatable): "
        "claude-sonnet-4=r1:7b lets Anthropic's clients keep their model names.",
    ),
    pooling: str | None = typer.Option(
        None,
        "--pooling",
        help="How embeddings pool token vectors for every model: none, mean, cls or last (default: as the model "
        "says; none: one vector per token, on /embeddings only), as llama-server's --pooling.",
    ),
    n_predict: int | None = typer.Option(
        None,
        "--n-predict",
        "-n",
        min=1,
        help="Tokens generated when a request sets no limit (default: up to the context), as llama-server's -n.",
    ),
    seed: int | None = typer.Option(
        None, "--seed", min=0, help="Sampling seed for requests that set none (default: a fresh one each time)."
    ),
    temperature: float | None = typer.Option(
        None,
        "--temperature",
        "--temp",
        min=0.0,
        max=5.0,
        help="Sampling temperature for requests that set none (default 0.6, R1's; 0 is greedy), as llama-server's --temp.",
    ),
    no_ui: bool = typer.Option(False, "--no-ui", help="Do not serve the chat page at /."),
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Run in the background (log in ~/.r1local/serve.log); r1local stop ends it."
    ),
) -> None:
    """Serve the OpenAI (/v1) and Ollama (/api) APIs on this machine.

    Example: r1local serve r1 --keep-alive 1h
    """
    import uvicorn  # the server stack loads only for this command

    from ..server import ServerSettings, create_app
    from ..server.duration import parse_duration

    keep_alive_s = parse_duration(keep_alive)
    if pooling is not None and pooling not in config.POOLINGS:
        raise UsageError(f"--pooling {pooling} is not a pooling.", f"Use one of {', '.join(config.POOLINGS)}.")
    if keep_alive_s == 0:
        raise UsageError("--keep-alive 0 would unload every model after each request.", "Use 30s or more, or -1.")
    names = list(models or [])
    paths = [resolve(ModelAddress.parse(name, allow_paths=True)) for name in names]  # a missing one: fail now
    drafts = speculation(spec, draft, draft_max, draft_min, draft_p_min)
    if drafts and drafts.draft:  # one draft model drafts for every model served
        if drafts.draft == "auto" and not paths:
            raise UsageError(
                "--draft auto chooses the draft for the models given at start: name one.",
                "Example: r1local serve r1:7b --draft auto",
            )
        drafts = dataclasses.replace(drafts, draft=str(draft_file(drafts.draft, paths[0] if paths else Path())))
    from ..fit import check_split
    from ..hardware import detect_live
    from ..rpc import parse_endpoints, probe_all
    from ..rpc.plan import device_names

    workers = parse_endpoints(rpc or config.rpc_workers())
    found = probe_all(workers, measure_bandwidth=False)  # a worker that is down: one line naming it, before binding
    if split := parse_split(tensor_split):  # wrong for these devices: say so now, not at the first request
        check_split(split, device_names(detect_live(), found))
    sock = bind(host, port)
    if detach:  # the port is free: hand it over to a background copy of this command
        sock.close()
        return resident.detach(sys.argv[1:], _client_url(host, port))
    key = _read_key(api_key_file) if api_key_file else api_key or config.api_key()
    if not _is_loopback(host) and not key:
        err.print(
            f"warning: serving on {host} without an API key: anyone on the network can use it. "
            "Set R1LOCAL_API_KEY or --api-key-file.",
            style="yellow",
            markup=False,
        )
    settings = ServerSettings(
        models=tuple(names),
        host=host,
        port=port,
        parallel=parallel,
        max_queue=max_queue,
        ctx=ctx,
        n_threads=threads,
        n_gpu_layers=gpu_layers,
        tensor_split=tuple(split or ()),
        api_key=key,
        cors_origins=(*(cors_origin or ()), *config.allowed_origins()),
        allowed_hosts=(*(allowed_host or ()), *config.allowed_hosts()),
        keep_alive_s=keep_alive_s,
        max_loaded=max_loaded,
        max_body_bytes=max_body,
        trim=not no_trim,
        strict=strict,
        think_budget=think_budget,
        web_ui=not no_ui,
        upstreams=upstreams(upstream or []),
        rpc=tuple(workers),
        aliases=tuple(parse_alias(text) for text in alias or []),
        pooling=pooling,
        n_predict=n_predict,
        seed=seed,
        temperature=temperature,
        kv_type=kv_type or config.kv_type(),
        speculation=drafts,
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    if len(names) > max_loaded:
        err.print(_beyond_max_loaded(names, max_loaded), style="yellow", markup=False)
    err.print(
        f"r1local API on http://{host}:{port}  (OpenAI: /v1, Ollama: /api"
        + ("" if no_ui else f", chat page: http://{host}:{port}/")
        + ")",
        markup=False,
    )
    config_ = uvicorn.Config(create_app(settings), log_level="info", timeout_graceful_shutdown=GRACE_S)
    url = _client_url(host, sock.getsockname()[1])
    record = server_record.claim(url)
    if record is None:
        err.print(
            f"note: another r1local serve is the one commands find; R1LOCAL_HOST={url} points them here.",
            style="yellow",
            markup=False,
        )
    try:
        _run_with_deadline(config_, sock)
    finally:
        if record is not None:
            server_record.release(record)


def _beyond_max_loaded(names: list[str], max_loaded: int) -> str:
    """What serving more models than --max-loaded does: all are served, the last ones stay in memory."""
    served = [ModelAddress.parse(name, allow_paths=True).served_name for name in names]
    kept = ", ".join(served[-max_loaded:])
    return (
        f"note: {plural(len(served), 'model')} given and --max-loaded {max_loaded}: all are served, but only "
        f"{kept} stay{'s' if max_loaded == 1 else ''} in memory after loading; a request for another loads it "
        f"in place of the least recently used. --max-loaded {len(served)} keeps them all loaded."
    )


def _read_key(path: Path) -> str:
    try:
        lines = path.expanduser().read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(
            f"Cannot read the API key file {path}: {getattr(error, 'strerror', None) or error}.",
            "Give a readable text file holding the key.",
        ) from None
    if not lines:
        raise UsageError(f"The API key file {path} is empty.", "Write the key on its first line.")
    return lines[0].strip()


def _run_with_deadline(config_, sock: socket.socket) -> None:
    """uvicorn's server with a hard deadline: the first stop signal (Ctrl-C, SIGTERM) starts a
    timer, and a shutdown that has not ended when it fires (a stuck unload, a load that will not
    stop) ends the process there, with the status the signal would have given."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame) -> None:
            if not self.should_exit:
                timer = threading.Timer(SHUTDOWN_DEADLINE_S, _exit_now, args=(sig,))
                timer.daemon = True
                timer.start()
            super().handle_exit(sig, frame)

    Server(config_).run(sockets=[sock])


def _exit_now(sig: int) -> None:
    sys.stderr.write(f"shutdown took longer than {SHUTDOWN_DEADLINE_S} s: exiting now\n")
    sys.stderr.flush()
    os._exit(128 + sig)
