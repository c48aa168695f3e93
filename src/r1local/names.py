"""ModelAddress: every form of model name users and clients type, parsed here and nowhere else.

    r1                          the distill and quantisation for this machine (see choice.py)
    r1:best, r1:fast, r1:npu    the best quality at a usable speed; the quickest that still reasons
                                well; the best made for this PC's NPU
    r1:7b, r1:7b-q8_0           a catalog distill, optionally with its quantisation
    deepseek-r1[:TAG]           Ollama's names for the same distills: deepseek-r1:7b,
                                deepseek-r1:8b-llama-distill-q4_K_M, deepseek-r1:70b-llama-distill-fp16
    hf.co/USER/REPO:QUANT       any GGUF repository on the Hub; the file is picked by quantisation
    USER/REPO/FILE.gguf         one file of a Hub repository (FILE may sit in a folder)
    ./model.gguf, /abs.gguf     a local file; opened only where paths are allowed (the command line)
    UPSTREAM/MODEL              a model of an OpenAI-compatible server the r1local server fronts
    NAME                        anything else: a name only a server knows (a file stem it serves)
    ...@openvino, ...@llama.cpp the engine that runs it (default: the one its format needs)

Parsing reads no file, except that with allow_paths=True (the command line) a name that is an
existing file means that file. Over HTTP (allow_paths=False) a path-shaped name can only match a
model the server already holds, so a request can never make the server open a file it names.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path, PurePath

from .errors import ModelNotFound, UsageError

ENGINES = ("llama.cpp", "openvino")
_REPO_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_HF_REF = re.compile(rf"^(?:https?://)?(?:hf\.co|huggingface\.co)/({_REPO_PART}/{_REPO_PART})(?::([A-Za-z0-9_]+))?$")
_HUB_FILE = re.compile(rf"^({_REPO_PART}/{_REPO_PART})/((?:{_REPO_PART}/)*{_REPO_PART}\.gguf)$")
# Ollama's tags of deepseek-r1: SIZE, SIZE-FAMILY-distill, SIZE-FAMILY-distill-QUANT (q4_K_M, q8_0, fp16)
_OLLAMA = re.compile(
    r"^deepseek-r1(?::(?:(?P<latest>latest)|(?P<size>\d+(?:\.\d+)?b)"
    r"(?:-(?P<family>qwen|llama)-distill)?(?:-(?P<quant>[a-z0-9_]+))?))?$",
    re.IGNORECASE,
)
_FAMILY_ARCH = {"qwen": "qwen2", "llama": "llama"}  # Ollama's distill family -> the GGUF architecture
_POLICIES = {"r1": "r1", "r1:latest": "r1", "r1:best": "r1:best", "r1:fast": "r1:fast", "r1:npu": "r1:npu"}
_FORMS = (
    "a catalog name (r1, r1:7b, r1:7b-q8_0; see r1local models), deepseek-r1:7b, hf.co/USER/REPO:QUANT, "
    "or USER/REPO/FILE.gguf"
)


class Kind(str, Enum):
    CHOICE = "choice"  # r1, r1:best, r1:fast, r1:npu: the catalog's pick for this machine
    CATALOG = "catalog"  # one distill, with or without its quantisation
    HUB = "hub"  # a Hub repository by quantisation, or one file of it
    PATH = "path"  # a GGUF file (or OpenVINO folder) on this machine
    UPSTREAM = "upstream"  # a model of a fronted OpenAI-compatible server
    SERVED = "served"  # a name only a server can know: the stem of a file it was started with


@dataclass(frozen=True)
class ModelAddress:
    """What a model name points at, and on which engine; built only by `parse`."""

    text: str  # as typed, engine suffix included
    name: str  # normalised, without the engine: r1:7b-q8_0, deepseek-r1:7b -> r1:7b
    kind: Kind
    engine: str | None = None  # "openvino" or "llama.cpp" when the name chose one
    policy: str = "r1"  # CHOICE: which choice policy (choice.POLICIES)
    distill: str | None = None  # CATALOG: "7b"
    quant: str | None = None  # CATALOG or HUB: "Q8_0" (None: choose)
    repo: str | None = None  # HUB: USER/REPO
    filename: str | None = None  # HUB: one file of `repo` (its other split parts come along)
    path: PurePath | None = None  # PATH: the file; absolute and existing when on_disk
    on_disk: bool = False  # PATH: checked to be a file here (only where paths are allowed)
    paths_allowed: bool = False  # parsed for the command line, where a file may be the model
    upstream: str | None = None  # UPSTREAM: the fronted server's name, and `remote` its model id
    remote: str | None = None

    @classmethod
    def parse(cls, text: str, *, allow_paths: bool = False, upstreams: Collection[str] = ()) -> ModelAddress:
        """Turn a model name into an address. allow_paths=True (the command line only) lets an
        existing file be the model; `upstreams` are the fronted servers' names (UPSTREAM/MODEL)."""
        text = text.strip()
        if not text:
            raise UsageError("The model name is empty.", "Try r1local models to see the catalog.")
        upstream, _, remote = text.partition("/")
        if upstream in upstreams and remote:
            return cls(text, text, Kind.UPSTREAM, upstream=upstream, remote=remote)
        base, engine = _split_engine(text)
        return replace(_parse_base(base, allow_paths), text=text, engine=engine, paths_allowed=allow_paths)

    @property
    def served_name(self) -> str:
        """The name a server lists this model by when started with it: a file by its stem."""
        base = self.path.stem if self.kind is Kind.PATH and self.path is not None else self.name
        return f"{base}@{self.engine}" if self.engine else base

    @property
    def for_server(self) -> str:
        """The name to send a server: a file as its absolute path, which the server matches
        against the files it holds (it never opens a path it is sent)."""
        if self.kind is Kind.PATH and self.on_disk:
            return f"{self.path}@{self.engine}" if self.engine else str(self.path)
        return self.text

    def names_file(self, path: Path) -> bool:
        """Whether this PATH address means `path` (a file a server holds), compared as text only:
        an absolute address must be that path, a relative one that file's name."""
        if self.kind is not Kind.PATH or self.path is None:
            return False
        return self.path == path if self.path.is_absolute() else self.path.as_posix() == path.name

    def unknown(self) -> ModelNotFound:
        """The error for a name nothing here answers to."""
        if self.kind is Kind.PATH:
            return ModelNotFound(
                f"No such file: {self.name}.",
                "Check the path, or use a catalog name like r1:7b."
                if self.paths_allowed
                else "A server serves only the files it was started with.",
            )
        return ModelNotFound(
            f"Unknown model name: {self.name}.",
            f"Use {_FORMS}" + (", or a path to a .gguf file." if self.paths_allowed else "."),
        )


def _split_engine(text: str) -> tuple[str, str | None]:
    """ "r1:7b@openvino" -> ("r1:7b", "openvino"); a name without a known engine is unchanged."""
    base, sep, engine = text.rpartition("@")
    if sep and base and engine.lower() in ENGINES:
        return base, engine.lower()
    return text, None


def _parse_base(name: str, allow_paths: bool) -> ModelAddress:
    lower = name.lower()
    if lower in _POLICIES:
        return ModelAddress(name, _POLICIES[lower], Kind.CHOICE, policy=_POLICIES[lower])
    if lower.startswith("r1:"):
        size, _, quant = lower[3:].partition("-")
        if not size:
            raise UsageError(f"{name} names no distill.", "Add its size, as in r1:7b; see r1local models.")
        return ModelAddress(name, lower, Kind.CATALOG, distill=size, quant=quant.upper() or None)
    if m := _OLLAMA.match(name):
        return _ollama(name, m)
    if allow_paths and (local := Path(name).expanduser()).is_file():
        return ModelAddress(name, name, Kind.PATH, path=local.resolve(), on_disk=True)
    if m := _HF_REF.match(name):
        return ModelAddress(name, name, Kind.HUB, repo=m.group(1), quant=(m.group(2) or "").upper() or None)
    if (m := _HUB_FILE.match(name)) and ".." not in name.split("/"):
        return ModelAddress(name, name, Kind.HUB, repo=m.group(1), filename=m.group(2))
    if _looks_like_path(name):
        return ModelAddress(name, name, Kind.PATH, path=PurePath(name))
    return ModelAddress(name, name.removesuffix(":latest"), Kind.SERVED)


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", ".\\"))
        or PurePath(name).is_absolute()
        or Path(name).suffix.lower() == ".gguf"
        or re.match(r"^[A-Za-z]:[\\/]", name) is not None
    )


def _ollama(name: str, m: re.Match) -> ModelAddress:
    """deepseek-r1[:TAG] as Ollama's library names the distills, mapped to the catalog."""
    if m.group("size") is None:  # deepseek-r1, deepseek-r1:latest: the default, chosen for this machine
        return ModelAddress(name, "r1", Kind.CHOICE)
    size, family, quant = m.group("size").lower(), m.group("family"), m.group("quant")
    quant = None if quant is None else "F16" if quant.lower() == "fp16" else quant.upper()
    if family is not None:
        from . import catalog  # the catalog says which family each size distils

        distills = {d.name: d for d in catalog.load().distills}
        if size in distills and distills[size].arch != _FAMILY_ARCH[family.lower()]:
            raise ModelNotFound(
                f"{name}: the catalog's {size} distill is not a {family} distill.",
                f"Use deepseek-r1:{size} (r1:{size}); see r1local models.",
            )
    full = f"r1:{size}" + (f"-{quant.lower()}" if quant else "")
    return ModelAddress(name, full, Kind.CATALOG, distill=size, quant=quant)
