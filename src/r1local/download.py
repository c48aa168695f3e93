"""Pulling models from the Hugging Face Hub into the local cache (see `store` for the layout).

The transfer itself is huggingface_hub's `http_get` (auth headers, retries that resume with a Range
request after a dropped connection, progress); the file list comes through `hubcall` (timeouts,
retries, a first line within moments); around them this module adds what `hf_hub_download`
does not give: a partial file that survives Ctrl-C and is resumed by the next pull, a disk-space
check for all parts before the first byte (disk_space.py: with a margin, and counting the pulls
already running), and a SHA-256 check against the Hub's LFS hash before the file gets its final name.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
from filelock import Timeout
from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import WeakFileLock, build_hf_headers

from . import config, disk_space, hubcall, store
from .errors import AuthRequired, DownloadError, ModelNotFound, OfflineError, R1Error
from .store import Target

OnWait = Callable[[str, bool], None]
_TOKEN_HINT = (
    "Accept the model's terms on https://huggingface.co/{repo}, then set HF_TOKEN to a read token "
    "(https://huggingface.co/settings/tokens) and run the same command again."
)


# What a Hub may answer: every one of these becomes part of a path in the cache, so anything else
# (a `../`, an absolute path, a separator in a hash) is refused before a byte is written.
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_GIT_BLOB_RE = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    sha256: str | None  # the LFS hash; None for a small file kept in git itself
    blob_id: str


@contextmanager
def _hub_errors(target: Target, what: str) -> Iterator[None]:
    """Turn huggingface_hub's and the HTTP client's errors into one clear sentence with a next step."""
    try:
        yield
    except GatedRepoError as e:
        raise AuthRequired(
            f"{target.repo} is gated: the Hub refused to send {what}.", _TOKEN_HINT.format(repo=target.repo)
        ) from e
    except RepositoryNotFoundError as e:
        raise ModelNotFound(
            f"{target.repo} was not found on the Hub.", "Check the repository name; for a private one, set HF_TOKEN."
        ) from e
    except RevisionNotFoundError as e:
        raise ModelNotFound(
            f"{target.repo} has no revision {target.revision!r}.", "Use a branch, tag or commit the repository has."
        ) from e
    except RemoteEntryNotFoundError as e:
        raise ModelNotFound(f"{what} is not in {target.repo}.") from e
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status in (401, 403):
            raise AuthRequired(f"The Hub refused {what} ({status}).", _TOKEN_HINT.format(repo=target.repo)) from e
        raise DownloadError(f"{hubcall.host()} answered {status} for {what}.", "Try again in a moment.") from e
    except OfflineModeIsEnabled as e:
        raise _offline(target.label) from e


def _offline(name: str) -> OfflineError:
    return OfflineError(
        f"{name} is not downloaded, and HF_HUB_OFFLINE=1 forbids downloading it.",
        "Unset HF_HUB_OFFLINE to download it, or see the models you have with: r1local list",
    )


def remote_files(target: Target, notify: hubcall.Notify | None = None) -> tuple[str, dict[str, RemoteFile]]:
    """The commit `target.revision` points at, and the repository's files with sizes and hashes;
    `notify` hears whom r1local contacts and each retry."""
    if config.hf_offline():
        raise _offline(target.label)
    api = HfApi(endpoint=config.hf_endpoint())
    with _hub_errors(target, "the file list"):
        info = hubcall.call(
            lambda timeout: api.model_info(target.repo, revision=target.revision, files_metadata=True, timeout=timeout),  # type: ignore[arg-type]
            f"the file list of {target.repo}",
            notify,
        )
    files = {
        s.rfilename: RemoteFile(
            s.rfilename, s.lfs.size if s.lfs else (s.size or 0), s.lfs.sha256 if s.lfs else None, s.blob_id or ""
        )
        for s in info.siblings or []
    }
    return _check_answer(target, info.sha, files.values()), files


def _check_answer(target: Target, commit: object, files: Iterable[RemoteFile]) -> str:
    """The commit, once the Hub answer is checked: refused when its commit, file names, hashes or sizes
    could not have come from a real repository (they name files in the cache, and a crafted one would
    write outside it)."""

    def refuse(what: str) -> DownloadError:
        return DownloadError(
            f"The Hub at {config.hf_endpoint()} sent {what} for {target.repo}; nothing was written.",
            "Check HF_ENDPOINT: it should point at huggingface.co or a mirror you trust.",
        )

    if not isinstance(commit, str) or not _COMMIT_RE.fullmatch(commit):
        raise refuse(f"an invalid commit id {str(commit)[:60]!r}")
    for f in files:
        if not _safe_relative(f.name):
            raise refuse(f"an unsafe file name {f.name[:80]!r}")
        if f.sha256 is not None and not _SHA256_RE.fullmatch(f.sha256):
            raise refuse(f"an invalid SHA-256 for {f.name}")
        if f.sha256 is None and not _GIT_BLOB_RE.fullmatch(f.blob_id):
            raise refuse(f"an invalid blob id for {f.name}")
        if not isinstance(f.size, int) or f.size < 0:
            raise refuse(f"an invalid size for {f.name}")
    return commit


def _safe_relative(name: str) -> bool:
    """A relative POSIX path that stays below its folder: no absolute path, drive, `..`, `.` or empty part."""
    parts = name.split("/")
    return (
        bool(name)
        and "\\" not in name
        and "\0" not in name
        and ":" not in parts[0]
        and all(part not in ("", ".", "..") for part in parts)
    )


def _inside(root: Path, path: Path) -> Path:
    """`path`, after checking that it stays inside `root` once `..` and symlinked folders are resolved."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise DownloadError(
            f"Refused to write {path.name} outside {root}.", "Check HF_ENDPOINT and the revision you asked for."
        )
    return path


def plan(target: Target, notify: hubcall.Notify | None = None) -> tuple[str, list[RemoteFile]]:
    """The commit and the exact files a pull of `target` would fetch (asks the Hub)."""
    commit, files = remote_files(target, notify)
    return commit, [files[name] for name in store.choose_files(target, list(files))]


class _Silent:
    """A progress bar that shows nothing (callers that print pass their own tqdm-like class)."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc) -> None:
        pass


def pull(
    target: Target, *, progress: type | None = None, on_wait: OnWait | None = None, notify: hubcall.Notify | None = None
) -> Path:
    """Download `target` into the cache (resuming partial files) and return the first part's path.

    `progress` is a tqdm-like class (keyword arguments total, initial, desc, unit...; `update(n)`;
    a context manager) that huggingface_hub's `http_get` drives, one bar per file. `on_wait(file,
    first)` is called each second while another pull of the same file holds its lock; raising
    from it stops waiting. `notify` hears whom r1local contacts and each retry.
    """
    commit, files = plan(target, notify)
    storage = store.storage_dir(target.repo)
    snapshot = storage / "snapshots" / commit
    missing = [f for f in files if not (snapshot / f.name).is_file()]
    with disk_space.reserved([(f.size, _partial(storage, f), _blob(storage, f)) for f in missing]):
        for f in missing:
            _fetch(target, storage, commit, f, progress or _Silent, on_wait or (lambda file, first: None))
    if target.revision != commit:
        ref = _inside(storage / "refs", storage / "refs" / (target.revision or "main"))
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    return snapshot / files[0].name


def _blob(storage: Path, f: RemoteFile) -> Path:
    return storage / "blobs" / (f.sha256 or f.blob_id)


def _partial(storage: Path, f: RemoteFile) -> Path:
    blob = _blob(storage, f)
    return blob.with_name(blob.name + ".incomplete")


@contextmanager
def _file_lock(lock: Path, file: str, on_wait: OnWait) -> Iterator[None]:
    """The lock on one file's download, telling `on_wait` while another pull holds it."""
    with ExitStack() as stack:
        for waited in itertools.count():
            try:
                stack.enter_context(WeakFileLock(lock, timeout=1))
                break
            except Timeout:
                on_wait(file, waited == 0)
        yield


def _fetch(target: Target, storage: Path, commit: str, f: RemoteFile, progress: type, on_wait: OnWait) -> None:
    blob, partial = _blob(storage, f), _partial(storage, f)
    pointer = _inside(storage / "snapshots" / commit, storage / "snapshots" / commit / f.name)
    _inside(storage / "blobs", blob)
    blob.parent.mkdir(parents=True, exist_ok=True)
    lock = config.hf_cache() / ".locks" / storage.name / f"{blob.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(lock, f.name, on_wait):
        if not blob.is_file():
            _download(target, commit, f, partial, progress)
            os.replace(partial, blob)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.unlink(missing_ok=True)
        try:
            pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        except OSError:  # no symlinks (Windows without developer mode): the file itself moves
            os.replace(blob, pointer)


def _download(target: Target, commit: str, f: RemoteFile, partial: Path, progress: type) -> None:
    """Fill `partial` up to f.size bytes, resuming what an earlier run left, then check its hash."""
    done = partial.stat().st_size if partial.is_file() else 0
    if done > f.size:
        partial.unlink()
        done = 0
    url = hf_hub_url(target.repo, f.name, revision=commit, endpoint=config.hf_endpoint())
    try:
        with _hub_errors(target, f.name), partial.open("ab") as out:
            http_get(
                url,
                out,
                resume_size=done,
                headers=build_hf_headers(),
                expected_size=f.size,
                displayed_filename=Path(f.name).name,
                tqdm_class=progress,
            )
    except R1Error:
        raise
    except httpx2.TransportError as e:
        raise _transfer_failed(f.name, partial, e) from e
    except OSError as e:
        if e.errno is not None:  # the disk, not the network: keep the partial file to resume
            raise DownloadError(
                f"Could not write {partial}: {e.strerror}.",
                "Fix the disk problem (space, permissions) and pull again to resume.",
            ) from e
        partial.unlink(missing_ok=True)  # http_get's size check: the server sent the wrong amount
        raise DownloadError(f"{f.name} arrived with the wrong size.", "Run the same command again.") from e
    finally:
        if partial.is_file() and partial.stat().st_size == 0:
            partial.unlink()  # nothing to resume: leave no empty file behind
    if f.sha256 and (actual := _sha256(partial)) != f.sha256:
        partial.unlink()
        raise DownloadError(
            f"{f.name} failed verification: its SHA-256 is {actual[:12]}…, the Hub says {f.sha256[:12]}…; "
            "the damaged download was deleted.",
            "Run the same command again; if it fails again, the mirror in HF_ENDPOINT serves a broken file.",
        )


def _transfer_failed(name: str, partial: Path, e: httpx2.TransportError) -> DownloadError:
    """What a network failure during a transfer means: a resumable stop once bytes arrived."""
    kept = partial.stat().st_size if partial.is_file() else 0
    if not kept:
        return DownloadError(hubcall.what_failed(e, name, 1), hubcall.NEXT_STEP)
    return DownloadError(
        f"Lost the connection to {hubcall.host()} after {store.human_size(kept)} of {name}: {e or type(e).__name__}.",
        "Run the same command again: the download resumes where it stopped.",
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
