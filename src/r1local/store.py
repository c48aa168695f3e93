"""Models on disk: find, list and remove GGUF files in the standard Hugging Face cache.

Files live in the layout every Hugging Face tool shares (models--USER--REPO/blobs/<sha256> with
snapshots/<commit>/<file> symlinks and refs/<branch>), so `hf cache scan`, other apps and
`try_to_load_from_cache` all see them. Reading that layout needs no network code: huggingface_hub
is imported only by `download`, which fills it, so a server of local files does not carry it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import catalog, config
from .errors import ModelNotFound, R1Error
from .gguf_meta import read_gguf
from .units import human_size  # noqa: F401  (sizes this module's callers print: one unit system, units.py)


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

    @property
    def complete(self) -> bool:
        """False when a part is cut short: it cannot load, and `pull` fetches it again."""
        snapshot = storage_dir(self.repo) / "snapshots" / self.commit
        return all(is_complete(snapshot / part) for part in self.files)


def file_digest(path: Path) -> str:
    """A stable id for a local file, from its path, size and time (hashing GBs would take minutes):
    the `digest` Ollama's /api/tags and /api/ps give, by which `stop FILE` finds a loaded file."""
    st = path.stat()
    return hashlib.sha256(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()


def free_space(path: Path) -> int:
    """Free bytes on the filesystem holding `path` (the nearest existing parent).
    Tests replace this function to simulate a full disk."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return shutil.disk_usage("/").free


# --------------------------------------------------------------------------- finding local files


def storage_dir(repo: str) -> Path:
    """The cache folder of a model repository: models--USER--REPO, as huggingface_hub names it."""
    return config.hf_cache() / ("models--" + repo.replace("/", "--"))


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


def choose_files(target: Target, available: list[str]) -> tuple[str, ...]:
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
    parts = _local_parts(target)
    return parts[0] if parts else None


def _local_parts(target: Target) -> list[Path]:
    storage = storage_dir(target.repo)
    commit = _commit_of(storage, target.revision)
    if commit is None:
        return []
    snapshot = storage / "snapshots" / commit
    try:
        files = choose_files(target, _snapshot_files(snapshot))
    except ModelNotFound:
        return []
    return [snapshot / name for name in files]


def is_complete(path: Path) -> bool:
    """Whether a GGUF file holds every byte its header promises (a copy cut short does not)."""
    try:
        read_gguf(path)
    except R1Error:
        return False
    return True


def discard_damaged(target: Target) -> bool:
    """Delete the cached parts of `target` that are cut short (and their blobs), so that a pull
    fetches them again instead of saying they are downloaded; True if there were any."""
    damaged = [part for part in _local_parts(target) if not is_complete(part)]
    blobs = (storage_dir(target.repo) / "blobs").resolve()
    for part in damaged:
        blob = part.resolve()
        part.unlink()
        if blob.parent == blobs:
            blob.unlink(missing_ok=True)
    return bool(damaged)


# --------------------------------------------------------------------------- listing and removing


def _usage_file() -> Path:
    return config.home() / "usage.json"


def _usage() -> dict[str, float]:
    try:
        return json.loads(_usage_file().read_text())
    except (OSError, ValueError):
        return {}


def mark_used(path: Path) -> None:
    """Remember when a cached model was last used (shown by `list`); a read-only home skips it."""
    usage = _usage()
    usage[str(path)] = time.time()
    target = _usage_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(usage, indent=1))
        os.replace(tmp, target)
    except OSError:
        pass


def _model_parts(name: str, available: list[str], variant: catalog.Variant | None) -> tuple[str, ...] | None:
    """The files of the model `name` opens (a GGUF, its split parts, or a catalog OpenVINO folder's
    files, named by its openvino_model.xml); None when `name` opens no complete model."""
    if name == catalog.IR_FILES[0] and variant is not None:
        return variant.files if set(variant.files) <= set(available) else None
    if not name.lower().endswith(".gguf") or (catalog.SPLIT_RE.search(name) and "-00001-of-" not in name):
        return None
    try:
        return catalog.split_parts(name, available)
    except ModelNotFound:  # an interrupted split pull: its parts show up once complete
        return None


def installed() -> list[LocalModel]:
    """Every GGUF model (and catalog OpenVINO folder) in the cache, read from the cache folders only."""
    cache, cat, usage = config.hf_cache(), catalog.load(), _usage()
    models = []
    for storage in sorted(cache.glob("models--*--*")):
        repo = "/".join(storage.name.split("--")[1:])
        refs: dict[str, list[str]] = {}
        for ref in (storage / "refs").glob("**/*"):
            if ref.is_file():
                refs.setdefault(ref.read_text().strip(), []).append(ref.relative_to(storage / "refs").as_posix())
        for snapshot in sorted((storage / "snapshots").glob("*")):
            available = _snapshot_files(snapshot)
            for name in sorted(available):
                variant = cat.find_file(repo, name)
                parts = _model_parts(name, available, variant)
                if parts is None:
                    continue
                path = snapshot / name
                on_main = "main" in refs.get(snapshot.name, [])
                models.append(
                    LocalModel(
                        name=variant.name if variant and on_main else f"{repo}/{name}",
                        repo=repo,
                        files=list(parts),
                        quant=catalog.quant_of(name),
                        size=sum((snapshot / p).stat().st_size for p in parts),
                        path=path,
                        commit=snapshot.name,
                        refs=refs.get(snapshot.name, []),
                        last_used=usage.get(str(path)),
                    )
                )
    return models


def remove(model: LocalModel) -> int:
    """Delete one model's snapshot entries and the blobs no other snapshot uses; return bytes freed."""
    storage = storage_dir(model.repo)
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
