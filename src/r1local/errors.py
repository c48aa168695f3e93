"""Error types: one table. Each class carries the sentence a user sees and the next step, and
declares its own exit code, HTTP status, OpenAI error code and a few words saying what it means.
`run -h`'s exit codes, docs/api.md's error table and the resident client's mapping from a server's
error body back to the class are all generated from these classes, so the same failure exits with
the same code in-process and through a server, and neither side guesses from exception text."""

from __future__ import annotations

MAX_TOKENS_EXIT = 20  # `run`: the output stopped at --max-tokens (or a full context); not an error, so past them
INTERRUPTED_EXIT = 130  # Ctrl-C, the code shells give a program ended by SIGINT


class R1Error(Exception):
    """Base of every error r1local reports to a user."""

    exit_code = 1
    http_status = 500
    error_type = "server_error"  # OpenAI error "type"
    code: str | None = "internal_error"  # OpenAI error "code": names the class in a server's answer
    meaning = "generation or the server failed"

    def __init__(self, message: str, hint: str | None = None, *, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.param = param

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class UsageError(R1Error):
    """The caller asked for something malformed or impossible."""

    exit_code = 2
    http_status = 400
    error_type = "invalid_request_error"
    code = "invalid_request"
    meaning = "bad usage or a malformed request"


class ModelNotFound(R1Error):
    exit_code = 3
    http_status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"
    meaning = "unknown model, or not downloaded"


class ModelFileError(R1Error):
    """A model file exists but cannot be used: not GGUF, truncated, unsupported architecture."""

    exit_code = 4
    http_status = 422
    error_type = "invalid_request_error"
    code = "model_unusable"
    meaning = "model file unusable"


class ContextOverflow(R1Error):
    """The prompt does not fit into the context window."""

    exit_code = 5
    http_status = 400
    error_type = "invalid_request_error"
    code = "context_length_exceeded"
    meaning = "prompt longer than the context"


class Overloaded(R1Error):
    """Every slot and queue place is taken."""

    exit_code = 6
    http_status = 503
    code = "overloaded"
    meaning = "server busy (queue full, every loaded model busy, too many pulls)"


class InsufficientMemory(R1Error):
    """Loading would exceed what the machine's memory holds."""

    exit_code = 7
    http_status = 507
    code = "insufficient_memory"
    meaning = "not enough memory for the model"


class DownloadError(R1Error):
    exit_code = 8
    http_status = 502
    code = "download_failed"
    meaning = "download failed"


class OfflineError(R1Error):
    exit_code = 9
    http_status = 503
    code = "offline"
    meaning = "offline (HF_HUB_OFFLINE) and not downloaded"


class WorkerUnreachable(R1Error):
    """An RPC worker (`r1local worker`) named by --rpc cannot be used."""

    exit_code = 10
    http_status = 503
    code = "worker_unreachable"
    meaning = "an RPC worker unusable"

    def __init__(self, endpoint: str, why: str) -> None:
        super().__init__(
            f"RPC worker {endpoint} is not usable: {why}.",
            f"Start it there with `r1local worker --port {endpoint.rpartition(':')[2]}` "
            "(and --host on a private network), or leave it out of --rpc.",
        )
        self.endpoint = endpoint


class BuildError(R1Error):
    """Building llama-cpp-python with a GPU backend failed, or its toolchain is missing."""

    exit_code = 11
    code = "build_failed"
    meaning = "building llama-cpp-python (accelerate) failed"


class WorkerLost(R1Error):
    """An RPC worker stopped answering while a model spread over it was generating."""

    exit_code = 12
    http_status = 503
    code = "worker_lost"
    meaning = "an RPC worker lost while generating"


class StorageError(R1Error):
    """The disk refused: a read-only or full cache or home folder, missing permissions."""

    exit_code = 13
    http_status = 507
    code = "storage_error"
    meaning = "the disk refused (permissions, full, read-only)"


class EngineUnavailable(ModelFileError):
    """The engine a model needs is not installed, or cannot drive the requested device."""

    exit_code = 14
    code = "engine_unavailable"
    meaning = "the engine the model needs is missing"


class OutOfMemory(InsufficientMemory):
    """llama.cpp could not allocate a model's buffers on a device or in RAM."""

    exit_code = 15
    code = "out_of_memory"
    meaning = "a device ran out of memory while loading"


class AuthRequired(DownloadError):
    """The Hub refused the download: a gated or private repository."""

    exit_code = 16
    http_status = 401
    code = "auth_required"
    meaning = "the Hub wants a token (gated or private)"


class InsufficientDisk(DownloadError):
    """The download would not fit on the disk that holds the Hugging Face cache."""

    exit_code = 17
    http_status = 507
    code = "insufficient_disk"
    meaning = "not enough disk space for the download"


class InvalidAPIKey(UsageError):
    """The server was started with an API key and the request did not carry it."""

    exit_code = 18
    http_status = 401
    code = "invalid_api_key"
    meaning = "missing or wrong API key"


class ForbiddenRequest(UsageError):
    """A request a browser page on another site could have sent: a foreign Host name or Origin."""

    exit_code = 19
    http_status = 403
    code = "forbidden"
    meaning = "a request a web page on another site could have sent"


# 20 is MAX_TOKENS_EXIT


class UnsupportedMediaType(UsageError):
    exit_code = 21
    http_status = 415
    code = "unsupported_media_type"
    meaning = "a browser's body not declared JSON"


class RequestTooLarge(UsageError):
    exit_code = 22
    http_status = 413
    code = "request_too_large"
    meaning = "request body too large"


class NotFound(UsageError):
    """Something other than a model that a request names does not exist (a stored response)."""

    exit_code = 23
    http_status = 404
    code = "not_found"
    meaning = "no such route or stored object"


class Unsupported(UsageError):
    """The model, or the engine running it, lacks a capability the request asks for."""

    exit_code = 24
    code = "unsupported_capability"
    meaning = "the model lacks a capability asked for (thinking, tools, grammar...)"


class RPCBuildError(R1Error):
    """Building llama.cpp's RPC backend or rpc-server failed."""

    exit_code = 25
    code = "rpc_build_failed"
    meaning = "building the RPC backend failed"


class UpstreamError(R1Error):
    """The upstream answered with an error: its status and message pass through."""

    exit_code = 26
    http_status = 502  # the upstream's own status, where it gave one
    code = "upstream_error"
    meaning = "an upstream server refused the request"

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.http_status = status
        self.error_type = "invalid_request_error" if status < 500 else "server_error"


class UpstreamDown(R1Error):
    exit_code = 27
    http_status = 503
    code = "upstream_unavailable"
    meaning = "an upstream server is not answering"


class Cancelled(R1Error):
    """A load or a download stopped before its end: Ctrl-C, a client that left, a server stopping."""

    exit_code = INTERRUPTED_EXIT
    http_status = 503
    code = "cancelled"
    meaning = "interrupted (Ctrl-C) or cancelled"


def storage_error(error: OSError) -> StorageError:
    where = f": {error.filename}" if error.filename else ""
    return StorageError(
        f"{error.strerror or error}{where}.",
        "Check that folder's permissions and free space; HF_HUB_CACHE moves the model cache, "
        "R1LOCAL_HOME r1local's own files.",
    )


# --------------------------------------------------------------------------- the table


def table() -> list[type[R1Error]]:
    """Every error class, by exit code."""
    found, todo = [], [R1Error]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: cls.exit_code)


def from_body(code: object, message: str) -> R1Error:
    """The error a server's OpenAI-style body names by its `code` (R1Error for codes of no class
    here), without its constructor's arguments: the server already wrote the whole sentence."""
    cls = next((c for c in table() if c.code == code), R1Error)
    error = cls.__new__(cls)
    R1Error.__init__(error, message)
    return error


def exit_codes_help() -> str:
    """The exit codes, as `run -h` lists them."""
    codes = [
        (0, "answered"),
        *((cls.exit_code, cls.meaning) for cls in table()),
        (MAX_TOKENS_EXIT, "stopped at --max-tokens or a full context"),
    ]
    return "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in sorted(codes)) + "."


def markdown_table() -> str:
    """docs/api.md's error table: exit code, HTTP status and OpenAI code of each class."""
    rows = ["| exit | HTTP | `code` | error | meaning |", "| --- | --- | --- | --- | --- |"]
    rows += [
        f"| {cls.exit_code} | {cls.http_status} | `{cls.code}` | {cls.__name__} | {cls.meaning} |" for cls in table()
    ]
    return "\n".join(rows) + "\n"
