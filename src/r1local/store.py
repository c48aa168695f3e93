"""Models on disk: pull, find, list and remove GGUF files in the standard Hugging Face cache.

Files land in the layout every Hugging Face tool shares (models--USER--REPO/blobs/<sha256> with
snapshots/<commit>/<file> symlinks and refs/<branch>), so `hf cache scan`, other apps and
`try_to_load_from_cache` all see them. The transfer itself is huggingface_hub's `http_get` (auth
headers, retries that resume with a Range request after a dropped connection, progress); around
it this module adds what `hf_hub_download` does not give: a partial file that survives Ctrl-C and
is resumed by the next pull, a disk-space check for all parts before the first byte, and a SHA-256
check against the Hub's LFS hash before the file gets its final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import http_get, repo_folder_name
from huggingface_hub.utils import WeakFileLock, build_hf_headers

from . import catalog, config
from .errors import AuthRequired, DownloadError, InsufficientDisk, ModelNotFound, OfflineError, R1Error

_TOKEN_HINT = (
    "Accept the model's terms on https://huggingface.co/{repo}, then set HF_TOKEN to a read token "
    "(https://huggingface.co/settings/tokens) and pull again."
)


@dataclass(frozen=True)
class Target:
    """What to fetch from a repository: exact files (split parts follow) or a quantisation."""

    repo: str
    files: tuple[str, ...] = ()
    quant: str | None = None
    revision: str | None = None  # branch, tag or commit; None means main

    @property
    def label(self) -> str:
        return f"{self.repo}/{self.files[0]}" if self.files else f"hf.co/{self.repo}:{self.quant}"


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    sha256: str | None  # the LFS hash; None for a small file kept in git itself
    blob_id: str


@dataclass
class LocalModel:
    """One GGUF model in the cache (a split model counts once)."""

    name: str  # the name to use it by: r1:7b-q4_k_m or USER/REPO/FILE.gguf
    repo: str
    files: list[str]  # repository paths, first part first
    quant: str | None
    size: int
    path: Path  # snapshot path of the first part: what llama.cpp opens
    commit: str
    refs: list[str] = field(default_factory=list)
    last_used: float | None = None


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def free_space(path: Path) -> int:
    """Free bytes on the filesystem holding `path` (the nearest existing parent).
    Tests replace this function to simulate a full disk."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return shutil.disk_usage("/").free


# --------------------------------------------------------------------------- finding local files


def _storage(repo: str) -> Path:
    return config.hf_cache() / repo_folder_name(repo_id=repo, repo_type="model")


def _commit_of(storage: Path, revision: str | None) -> str | None:
    revision = revision or "main"
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    ref = storage / "refs" / revision
    return ref.read_text().strip() if ref.is_file() else None


def _snapshot_files(snapshot: Path) -> list[str]:
    if not snapshot.is_dir():
        return []
    return [p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()]


def _choose(target: Target, available: list[str]) -> tuple[str, ...]:
    """The repository files `target` means, given the files that exist (raises ModelNotFound)."""
    if not target.files:
        return catalog.pick_by_quant(target.repo, target.quant or "Q4_K_M", available)
    chosen: list[str] = []
    for name in target.files:
        if name not in available:
            quants = sorted({q for f in available if (q := catalog.quant_of(f))})
            hint = f"It has these quantisations: {', '.join(quants)}." if quants else None
            raise ModelNotFound(f"{name} is not in {target.repo}.", hint)
        chosen += [p for p in catalog.split_parts(name, available) if p not in chosen]
    return tuple(chosen)


def find_local(target: Target) -> Path | None:
    """The cached file (first part) for `target`, without any network access; None if absent."""
    storage = _storage(target.repo)
    commit = _commit_of(storage, target.revision)
    if commit is None:
        return None
    snapshot = storage / "snapshots" / commit
    try:
        files = _choose(target, _snapshot_files(snapshot))
    except ModelNotFound:
        return None
    return snapshot / files[0]


# --------------------------------------------------------------------------- pulling


@contextmanager
def _hub_errors(target: Target, what: str) -> Iterator[None]:
    """Turn huggingface_hub's and the HTTP client's errors into one clear sentence with a next step."""
    try:
        yield
    except GatedRepoError as e:
        raise AuthRequired(f"{target.repo} is gated: the Hub refused to send {what}.",
                           _TOKEN_HINT.format(repo=target.repo)) from e
    except RepositoryNotFoundError as e:
        raise ModelNotFound(f"{target.repo} was not found on the Hub.",
                            "Check the repository name; for a private one, set HF_TOKEN.") from e
    except RevisionNotFoundError as e:
        raise ModelNotFound(f"{target.repo} has no revision {target.revision!r}.",
                            "Use a branch, tag or commit the repository has.") from e
    except RemoteEntryNotFoundError as e:
        raise ModelNotFound(f"{what} is not in {target.repo}.") from e
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status in (401, 403):
            raise AuthRequired(f"The Hub refused {what} ({status}).", _TOKEN_HINT.format(repo=target.repo)) from e
        raise DownloadError(f"The Hub answered {status} for {what}.", "Try again in a moment.") from e
    except OfflineModeIsEnabled as e:
        raise _offline(target.label) from e
    except httpx2.TransportError as e:
        raise DownloadError(f"Lost the connection to {config.hf_endpoint()} while fetching {what}: {e}.",
                            "Check the network and pull again: the download resumes where it stopped.") from e


def _offline(name: str) -> OfflineError:
    return OfflineError(f"{name} is not downloaded, and HF_HUB_OFFLINE=1 forbids downloading it.",
                        "Unset HF_HUB_OFFLINE to download it, or see the models you have with: r1local list")


def remote_files(target: Target) -> tuple[str, dict[str, RemoteFile]]:
    """The commit `target.revision` points at, and the repository's files with sizes and hashes."""
    if config.hf_offline():
        raise _offline(target.label)
    api = HfApi(endpoint=config.hf_endpoint())
    with _hub_errors(target, "the file list"):
        info = api.model_info(target.repo, revision=target.revision, files_metadata=True)
    files = {
        s.rfilename: RemoteFile(s.rfilename, s.lfs.size if s.lfs else (s.size or 0),
                                s.lfs.sha256 if s.lfs else None, s.blob_id or "")
        for s in info.siblings or []
    }
    return info.sha, files


def plan(target: Target) -> tuple[str, list[RemoteFile]]:
    """The commit and the exact files a pull of `target` would fetch (asks the Hub)."""
    commit, files = remote_files(target)
    return commit, [files[name] for name in _choose(target, list(files))]


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


def pull(target: Target, *, progress: type | None = None) -> Path:
    """Download `target` into the cache (resuming partial files) and return the first part's path.

    `progress` is a tqdm-like class (keyword arguments total, initial, desc, unit...; `update(n)`;
    a context manager) that huggingface_hub's `http_get` drives, one bar per file.
    """
    commit, files = plan(target)
    storage = _storage(target.repo)
    snapshot = storage / "snapshots" / commit
    missing = [f for f in files if not (snapshot / f.name).is_file()]
    _check_space(storage, missing)
    for f in missing:
        _fetch(target, storage, commit, f, progress or _Silent)
    if target.revision != commit:
        ref = storage / "refs" / (target.revision or "main")
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    return snapshot / files[0].name


def _blob(storage: Path, f: RemoteFile) -> Path:
    return storage / "blobs" / (f.sha256 or f.blob_id)


def _partial(storage: Path, f: RemoteFile) -> Path:
    return _blob(storage, f).with_name(_blob(storage, f).name + ".incomplete")


def _check_space(storage: Path, files: list[RemoteFile]) -> None:
    need = 0
    for f in files:
        if not _blob(storage, f).is_file():
            partial = _partial(storage, f)
            need += f.size - (partial.stat().st_size if partial.is_file() else 0)
    free = free_space(storage)
    if need > free:
        raise InsufficientDisk(
            f"Not enough disk space: the download needs {human_size(need)}, "
            f"{config.hf_cache()} has {human_size(free)} free.",
            "Free some space (r1local list / r1local rm NAME), or point HF_HUB_CACHE at a bigger disk.",
        )


def _fetch(target: Target, storage: Path, commit: str, f: RemoteFile, progress: type) -> None:
    blob, partial = _blob(storage, f), _partial(storage, f)
    pointer = storage / "snapshots" / commit / f.name
    blob.parent.mkdir(parents=True, exist_ok=True)
    lock = config.hf_cache() / ".locks" / storage.name / f"{blob.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock):
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
            http_get(url, out, resume_size=done, headers=build_hf_headers(), expected_size=f.size,
                     displayed_filename=Path(f.name).name, tqdm_class=progress)
    except R1Error:
        raise
    except OSError as e:
        if e.errno is not None:  # the disk, not the network: keep the partial file to resume
            raise DownloadError(f"Could not write {partial}: {e.strerror}.",
                                "Fix the disk problem (space, permissions) and pull again to resume.") from e
        partial.unlink(missing_ok=True)  # http_get's size check: the server sent the wrong amount
        raise DownloadError(f"{f.name} arrived with the wrong size.", "Pull again.") from e
    finally:
        if partial.is_file() and partial.stat().st_size == 0:
            partial.unlink()  # nothing to resume: leave no empty file behind
    if f.sha256 and (actual := _sha256(partial)) != f.sha256:
        partial.unlink()
        raise DownloadError(
            f"{f.name} failed verification: its SHA-256 is {actual[:12]}…, the Hub says {f.sha256[:12]}…; "
            "the damaged download was deleted.",
            "Pull again; if it fails again, the mirror in HF_ENDPOINT serves a broken file.",
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- listing and removing


def _usage_file() -> Path:
    return config.home() / "usage.json"


def _usage() -> dict[str, float]:
    try:
        return json.loads(_usage_file().read_text())
    except (OSError, ValueError):
        return {}


def mark_used(path: Path) -> None:
    """Remember when a cached model was last used (shown by `list`)."""
    usage = _usage()
    usage[str(path)] = time.time()
    target = _usage_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(usage, indent=1))
    os.replace(tmp, target)


def installed() -> list[LocalModel]:
    """Every GGUF model in the cache, read from the cache folders only."""
    cache, cat, usage = config.hf_cache(), catalog.load(), _usage()
    models = []
    for storage in sorted(cache.glob("models--*--*")):
        repo = "/".join(storage.name.split("--")[1:])
        refs = {}
        for ref in (storage / "refs").glob("**/*"):
            if ref.is_file():
                refs.setdefault(ref.read_text().strip(), []).append(ref.relative_to(storage / "refs").as_posix())
        for snapshot in sorted((storage / "snapshots").glob("*")):
            available = _snapshot_files(snapshot)
            for name in sorted(available):
                if not name.lower().endswith(".gguf") or (catalog.SPLIT_RE.search(name) and "-00001-of-" not in name):
                    continue
                try:
                    parts = catalog.split_parts(name, available)
                except ModelNotFound:  # an interrupted split pull: its parts show up once complete
                    continue
                path = snapshot / name
                variant = cat.find_file(repo, name)
                on_main = "main" in refs.get(snapshot.name, [])
                models.append(LocalModel(
                    name=variant.name if variant and on_main else f"{repo}/{name}",
                    repo=repo, files=list(parts), quant=catalog.quant_of(name),
                    size=sum((snapshot / p).stat().st_size for p in parts), path=path,
                    commit=snapshot.name, refs=refs.get(snapshot.name, []), last_used=usage.get(str(path)),
                ))
    return models


def remove(model: LocalModel) -> int:
    """Delete one model's snapshot entries and the blobs no other snapshot uses; return bytes freed."""
    storage = _storage(model.repo)
    snapshot = storage / "snapshots" / model.commit
    doomed = [snapshot / p for p in model.files]
    blobs = {p.resolve() for p in doomed if p.is_symlink()}
    freed = 0
    for p in doomed:
        if not p.is_symlink():  # a copied file (no symlink support) holds the bytes itself
            freed += p.stat().st_size
        p.unlink()
    still_used = {p.resolve() for p in (storage / "snapshots").rglob("*") if p.is_file()}
    for blob in blobs - still_used:
        if blob.is_file() and blob.parent == storage / "blobs":
            freed += blob.stat().st_size
            blob.unlink()
    _prune(snapshot)
    if not any((storage / "snapshots").rglob("*")):
        shutil.rmtree(storage)
        shutil.rmtree(config.hf_cache() / ".locks" / storage.name, ignore_errors=True)
    usage = _usage()
    if usage.pop(str(model.path), None) is not None:
        _usage_file().write_text(json.dumps(usage, indent=1))
    return freed


def _prune(folder: Path) -> None:
    """Remove empty folders below and including `folder`."""
    for sub in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
