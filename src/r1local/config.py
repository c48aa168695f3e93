"""Every environment variable and default r1local reads, in one place."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil

from .errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib as toml
else:  # pragma: no cover
    import tomli as toml

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11435
DEFAULT_CTX = 8192  # reasoning is long; capped by the model's trained context
POOLINGS = ("none", "mean", "cls", "last")  # serve --pooling, as llama-server's (engine/embedding.py)
MIN_CTX = 2048
KV_TYPES = ("f16", "q8_0", "q4_0")  # KV cache element types llama.cpp offers for K and V alike


def debug() -> bool:
    """R1LOCAL_DEBUG=1 shows tracebacks and llama.cpp's own log."""
    return os.environ.get("R1LOCAL_DEBUG", "") not in ("", "0")


def prefix_cache_bytes() -> int:
    """R1LOCAL_PREFIX_CACHE_MB: RAM for evicted chat histories' KV cache (0 turns it off)."""
    return int(os.environ.get("R1LOCAL_PREFIX_CACHE_MB", "1024")) * 1024 * 1024


def rpc_workers() -> str | None:
    """R1LOCAL_RPC, else config.toml's `rpc`: RPC workers (host:port,...) to spread models over, as --rpc does."""
    workers = os.environ.get("R1LOCAL_RPC") or saved_settings().get("rpc")
    if workers is not None and not isinstance(workers, str):
        raise UsageError(
            f"{config_file()}: rpc must be a string.", 'Example: rpc = "192.168.1.20:50052,192.168.1.21:50052"'
        )
    return workers or None


def kv_type() -> str | None:
    """R1LOCAL_KV_TYPE, else config.toml's `kv_type`: the KV cache's type (f16, q8_0, q4_0) where
    --kv-type is not given; None lets the fit choose (q8_0 only where f16 would not fit)."""
    env = os.environ.get("R1LOCAL_KV_TYPE")
    value = env or saved_settings().get("kv_type")
    if value is not None and value not in KV_TYPES:
        where = "R1LOCAL_KV_TYPE" if env else f"{config_file()}: kv_type"
        raise UsageError(f"{where} must be one of {', '.join(KV_TYPES)}, not {value!r}.", 'Example: kv_type = "q8_0"')
    return value or None


def rpc_build_dir() -> Path:
    """R1LOCAL_RPC_BUILD: where llama.cpp's RPC backend and rpc-server are built (default R1LOCAL_HOME/rpc)."""
    return Path(os.environ.get("R1LOCAL_RPC_BUILD") or home() / "rpc")


def api_key() -> str | None:
    return os.environ.get("R1LOCAL_API_KEY") or None


def allowed_hosts() -> tuple[str, ...]:
    """Extra Host names the server answers to (comma-separated), beyond loopback and IP addresses."""
    return tuple(h.strip() for h in os.environ.get("R1LOCAL_ALLOWED_HOSTS", "").split(",") if h.strip())


def allowed_origins() -> tuple[str, ...]:
    """Web page origins allowed beyond the defaults, comma-separated, `*` a wildcard (as OLLAMA_ORIGINS)."""
    return tuple(o.strip() for o in os.environ.get("R1LOCAL_ORIGINS", "").split(",") if o.strip())


DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
HOST_VARIABLES = ("R1LOCAL_HOST", "R1LOCAL_URL")  # R1LOCAL_URL: the name older versions read


def server_host() -> tuple[str, str] | None:
    """R1LOCAL_HOST, as Ollama's OLLAMA_HOST: the r1local serve the CLI talks to, as HOST, HOST:PORT or
    a URL (http unless https:// is given, port 11435 unless given), and the variable's name; None when unset."""
    for variable in HOST_VARIABLES:
        if value := os.environ.get(variable, "").strip():
            return _as_url(value, variable), variable
    return None


def _as_url(value: str, variable: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value if "://" in value else f"http://{value}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.path.strip("/"):
        raise UsageError(
            f"{variable}={value!r} is not a server address.",
            f"Examples: {variable}=127.0.0.1:18600, {variable}=http://192.168.1.20:11435",
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port or DEFAULT_PORT}"


def home() -> Path:
    """r1local's own state (last-used times, settings, the server record and secret); models live in the
    Hugging Face cache. Created readable by this user only, whichever command writes to it first."""
    path = Path(os.environ.get("R1LOCAL_HOME", Path.home() / ".r1local"))
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:  # a read-only place: commands that only read still work, a write says why it failed
        pass
    return path


def open_private(path: Path, mode: str = "ab"):
    """Open a file only this user may read (logs, records), tightening one an older version left open."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    if os.chmod in os.supports_fd:
        os.chmod(fd, 0o600)
    return os.fdopen(fd, mode)


def default_threads() -> int:
    """Decode is bound by memory bandwidth: physical cores beat hyper-threads."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def build_cache() -> Path:
    """R1LOCAL_BUILD_CACHE: where `r1local accelerate` keeps the llama-cpp-python builds it made."""
    if os.environ.get("R1LOCAL_BUILD_CACHE"):
        return Path(os.environ["R1LOCAL_BUILD_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "r1local" / "builds"


# Hugging Face settings are read at call time (huggingface_hub reads its own at import), so one
# process, and each test, can point them somewhere else.
def hf_endpoint() -> str:
    """HF_ENDPOINT: the Hub or a mirror of it (the tests point it at a loopback test hub)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_read_timeout() -> float:
    """R1LOCAL_HUB_TIMEOUT: seconds to wait for the Hub's answer to a request (default 10)."""
    try:
        return max(float(os.environ.get("R1LOCAL_HUB_TIMEOUT", "10")), 0.1)
    except ValueError:
        return 10.0


def hf_cache() -> Path:
    """The standard Hugging Face cache, where downloaded models live (shared with other tools)."""
    if os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ.get("HF_HUB_CACHE") or os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    xdg = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("HF_HOME", xdg / "huggingface")).expanduser() / "hub"


def hf_offline() -> bool:
    """HF_HUB_OFFLINE=1: use downloaded models only, never touch the network."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def catalog_path() -> Path | None:
    """R1LOCAL_CATALOG: a catalog TOML used instead of the packaged one (the tests use it)."""
    value = os.environ.get("R1LOCAL_CATALOG")
    return Path(value) if value else None


OPENVINO_EXTRA = "pip install 'r1local[openvino]'"  # the one command that adds the OpenVINO engine


def openvino_cache_dir() -> Path:
    """R1LOCAL_OPENVINO_CACHE: OpenVINO's compiled models, so only the first load compiles."""
    value = os.environ.get("R1LOCAL_OPENVINO_CACHE")
    return Path(value).expanduser() if value else home() / "openvino-cache"


def npu_shape() -> tuple[int, int]:
    """The NPU compiles static shapes: (R1LOCAL_NPU_MAX_PROMPT, R1LOCAL_NPU_MIN_RESPONSE) tokens.
    R1 reasons for thousands of tokens, so the answer's room is larger than OpenVINO's default."""
    return (
        int(os.environ.get("R1LOCAL_NPU_MAX_PROMPT", "2048")),
        int(os.environ.get("R1LOCAL_NPU_MIN_RESPONSE", "2048")),
    )


def config_file() -> Path:
    """R1LOCAL_HOME/config.toml: settings kept between runs (`rpc = "host:port,..."`, and an
    [upstreams] table of NAME = URL)."""
    return home() / "config.toml"


def saved_settings() -> dict:
    """The config file's settings; none when there is no file."""
    path = config_file()
    if not path.is_file():
        return {}
    try:
        return toml.loads(path.read_text(encoding="utf-8"))
    except (toml.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{path} is not valid TOML: {error}.", "Fix or remove the file.") from None
