"""Error types. Each carries the sentence a user sees, the next step, and how it maps to an
exit code and an HTTP status, so the CLI and the server never guess from exception text."""

from __future__ import annotations


MAX_TOKENS_EXIT = 20  # `run`: the output stopped at --max-tokens (or a full context); not an error, so past them
INTERRUPTED_EXIT = 130  # Ctrl-C, the code shells give a program ended by SIGINT


class R1Error(Exception):
    """Base of every error r1local reports to a user."""

    exit_code = 1
    http_status = 500
    error_type = "server_error"  # OpenAI error "type"
    code: str | None = None  # OpenAI error "code"

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


class InvalidAPIKey(UsageError):
    """The server was started with an API key and the request did not carry it."""

    http_status = 401
    code = "invalid_api_key"


class ForbiddenRequest(UsageError):
    """A request a browser page on another site could have sent: a foreign Host name or Origin."""

    http_status = 403
    code = "forbidden"


class UnsupportedMediaType(UsageError):
    http_status = 415
    code = "unsupported_media_type"


class RequestTooLarge(UsageError):
    http_status = 413
    code = "request_too_large"


class NotFound(UsageError):
    """Something a request names that the server does not hold (a stored response)."""

    http_status = 404
    code = "not_found"


class ModelNotFound(R1Error):
    exit_code = 3
    http_status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class Cancelled(R1Error):
    """A load or a download stopped before its end: Ctrl-C, a client that left, a server stopping."""

    exit_code = 130
    http_status = 503
    code = "cancelled"


class ModelFileError(R1Error):
    """A model file exists but cannot be used: not GGUF, truncated, unsupported architecture."""

    exit_code = 4
    http_status = 422
    error_type = "invalid_request_error"
    code = "model_unusable"


class EngineUnavailable(ModelFileError):
    """The engine a model needs is not installed, or cannot drive the requested device."""

    code = "engine_unavailable"


class ContextOverflow(R1Error):
    """The prompt does not fit into the context window."""

    exit_code = 5
    http_status = 400
    error_type = "invalid_request_error"
    code = "context_length_exceeded"


class Overloaded(R1Error):
    """Every slot and queue place is taken."""

    exit_code = 6
    http_status = 503
    error_type = "server_error"
    code = "overloaded"


class InsufficientMemory(R1Error):
    """Loading would exceed what the machine's memory holds."""

    exit_code = 7
    http_status = 507
    error_type = "server_error"
    code = "insufficient_memory"


class OutOfMemory(InsufficientMemory):
    """llama.cpp could not allocate a model's buffers on a device or in RAM."""


class DownloadError(R1Error):
    exit_code = 8
    http_status = 502
    error_type = "server_error"
    code = "download_failed"


class AuthRequired(DownloadError):
    """The Hub refused the download: a gated or private repository."""

    code = "auth_required"
    http_status = 401


class InsufficientDisk(DownloadError):
    """The download would not fit on the disk that holds the Hugging Face cache."""

    code = "insufficient_disk"
    http_status = 507


class StorageError(R1Error):
    """The disk refused: a read-only or full cache or home folder, missing permissions."""

    exit_code = 10
    http_status = 507
    code = "storage_error"


def storage_error(error: OSError) -> StorageError:
    where = f": {error.filename}" if error.filename else ""
    return StorageError(
        f"{error.strerror or error}{where}.",
        "Check that folder's permissions and free space; HF_HUB_CACHE moves the model cache, "
        "R1LOCAL_HOME r1local's own files.",
    )


class OfflineError(R1Error):
    exit_code = 9
    http_status = 503
    error_type = "server_error"
    code = "offline"


class WorkerUnreachable(R1Error):
    """An RPC worker (`r1local worker`) named by --rpc cannot be used."""

    exit_code = 10
    http_status = 503
    error_type = "server_error"
    code = "worker_unreachable"

    def __init__(self, endpoint: str, why: str) -> None:
        super().__init__(f"RPC worker {endpoint} is not usable: {why}.",
                         f"Start it there with `r1local worker --port {endpoint.rpartition(':')[2]}` "
                         "(and --host on a private network), or leave it out of --rpc.")
        self.endpoint = endpoint


class WorkerLost(R1Error):
    """An RPC worker stopped answering while a model spread over it was generating."""

    exit_code = 10
    http_status = 503
    error_type = "server_error"
    code = "worker_lost"


class BuildError(R1Error):
    """Building llama-cpp-python with a GPU backend failed, or its toolchain is missing."""

    exit_code = 11
