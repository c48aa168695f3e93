"""`serve`: the OpenAI- and Ollama-compatible local API."""

from __future__ import annotations

import ipaddress
import logging
import sys
from typing import Optional

import typer

if sys.version_info >= (3, 11):
    import tomllib as toml
else:  # pragma: no cover
    import tomli as toml

from .. import config
from ..engine.registry import split_engine
from ..engine.upstream import parse_spec
from ..errors import UsageError
from ..resolve import resolve
from .app import command, err
from .run import CTX_OPT, GPU_OPT, RPC_OPT, THREADS_OPT


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def upstreams(specs: list[str]) -> tuple[tuple[str, str], ...]:
    """--upstream NAME=URL options over the config file's [upstreams] table (same NAME: the option wins)."""
    found: dict[str, str] = {}
    path = config.config_file()
    if path.is_file():
        try:
            table = toml.loads(path.read_text(encoding="utf-8")).get("upstreams", {})
        except (toml.TOMLDecodeError, UnicodeDecodeError) as error:
            raise UsageError(f"{path} is not valid TOML: {error}.", "Fix or remove the file.") from None
        found |= dict(parse_spec(f"{name}={url}") for name, url in table.items())
    found |= dict(parse_spec(spec) for spec in specs)
    return tuple(found.items())


@command()
def serve(
    models: Optional[list[str]] = typer.Argument(
        None, help="Models to load at start: catalog names (r1:7b) or .gguf paths (served by file stem); "
              "NAME@openvino runs one on OpenVINO."),
    host: str = typer.Option(config.DEFAULT_HOST, "--host",
                             help="Address to bind; 0.0.0.0 exposes the API to the network."),
    port: int = typer.Option(config.DEFAULT_PORT, "--port"),
    parallel: int = typer.Option(4, "--parallel", min=1, help="Requests generated at once per model (slots)."),
    max_queue: Optional[int] = typer.Option(None, "--max-queue", min=0,
                                            help="Requests waiting beyond the slots before 503 (default 4 per slot)."),
    ctx: Optional[int] = CTX_OPT,
    threads: Optional[int] = THREADS_OPT,
    gpu_layers: Optional[int] = GPU_OPT,
    rpc: Optional[str] = RPC_OPT,
    api_key: Optional[str] = typer.Option(None, "--api-key",
                                          help="Require 'Authorization: Bearer KEY' (or set R1LOCAL_API_KEY)."),
    cors_origin: Optional[list[str]] = typer.Option(None, "--cors-origin",
                                                    help="Allow browser pages from this origin (repeatable)."),
    allowed_host: Optional[list[str]] = typer.Option(
        None, "--allowed-host",
        help="Answer requests addressed to this host name too (repeatable; or R1LOCAL_ALLOWED_HOSTS=a,b). "
             "IP addresses and localhost always work; other names are refused against DNS rebinding."),
    keep_alive: str = typer.Option("5m", "--keep-alive", help="Unload a model idle this long (30s, 5m, 1h; -1 never)."),
    max_loaded: int = typer.Option(1, "--max-loaded", min=1,
                                   help="Models held in memory at once (the least recently used leaves)."),
    max_body: int = typer.Option(4 * 1024 * 1024, "--max-body", min=1024, help="Largest request body in bytes."),
    upstream: Optional[list[str]] = typer.Option(
        None, "--upstream", help="Front an OpenAI-compatible server as NAME=URL (repeatable; also [upstreams] "
                                 "in ~/.r1local/config.toml): its models are served as NAME/MODEL."),
) -> None:
    """Serve the OpenAI (/v1) and Ollama (/api) APIs on this machine."""
    import uvicorn  # the server stack loads only for this command

    from ..server import ServerSettings, create_app
    from ..server.duration import parse_duration

    keep_alive_s = parse_duration(keep_alive)
    if keep_alive_s == 0:
        raise UsageError("--keep-alive 0 would unload every model after each request.", "Use 30s or more, or -1.")
    names = list(models or [])
    for name in names:  # fail before binding the port when a model is missing
        resolve(split_engine(name)[0], allow_paths=True)
    from ..rpc import parse_endpoints, probe_all

    workers = parse_endpoints(rpc or config.rpc_workers())
    probe_all(workers, measure_bandwidth=False)  # a worker that is down: one line naming it, before binding
    key = api_key or config.api_key()
    if not _is_loopback(host) and not key:
        err.print(f"warning: serving on {host} without an API key: anyone on the network can use it. "
                  "Set --api-key or R1LOCAL_API_KEY.", style="yellow", markup=False)
    settings = ServerSettings(
        models=tuple(names), host=host, port=port, parallel=parallel, max_queue=max_queue, ctx=ctx,
        n_threads=threads, n_gpu_layers=gpu_layers, api_key=key, cors_origins=tuple(cors_origin or ()),
        allowed_hosts=(*(allowed_host or ()), *config.allowed_hosts()),
        keep_alive_s=keep_alive_s, max_loaded=max_loaded, max_body_bytes=max_body,
        upstreams=upstreams(upstream or []), rpc=tuple(workers),
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    err.print(f"r1local API on http://{host}:{port}  (OpenAI: /v1, Ollama: /api)", markup=False)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
