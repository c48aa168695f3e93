"""Build llama.cpp's RPC pieces for the installed llama-cpp-python, once, from its own sources.

llama-cpp-python's wheels ship no RPC backend and no rpc-server. Both are built here from the
llama.cpp that the installed version vendors (its sdist), so the two ends of a connection speak
the same protocol and the backend matches the libggml it is loaded into:

  libggml-rpc.so  the RPC backend as a loadable ggml backend (exports ggml_backend_init), loaded
                  into the running process with ggml_backend_load();
  rpc-server      llama.cpp's worker, linked against llama-cpp-python's own libggml, so it offers
                  whatever that build can use (CPU, and a GPU after `r1local accelerate`); its
                  ggml_backend_load_all() finds libggml-rpc.so beside it.

Only three source files are compiled (about a minute); the result is cached per llama-cpp-python
version and libggml, under R1LOCAL_HOME/rpc (or R1LOCAL_RPC_BUILD).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .. import config
from ..accelerate.build import clock
from ..errors import RPCBuildError

PACKAGE = "llama-cpp-python"
BACKEND = "libggml-rpc.so"
SERVER = "rpc-server"
_VENDOR = "vendor/llama.cpp/"
_SOURCES = ("ggml/include/", "ggml/src/ggml-rpc/", "tools/rpc/rpc-server.cpp")


def llama_lib_dir() -> Path:
    """Where llama-cpp-python keeps libllama and libggml."""
    from ..engine.bindings import C

    package = Path(C.__file__).parent
    return package / "lib" if (package / "lib").is_dir() else package


def artefact_dir() -> Path:
    """One folder per llama-cpp-python version, libggml build (accelerate replaces libggml) and
    install place: rpc-server finds libggml by the absolute path it was linked with, so another
    environment (or this one made again elsewhere) gets a build of its own."""
    version = importlib.metadata.version(PACKAGE)
    lib = llama_lib_dir()
    digest = hashlib.sha256(str(lib.resolve()).encode() + (lib / "libggml-base.so").read_bytes()).hexdigest()[:12]
    return config.rpc_build_dir() / f"{version}-{digest}"


def built() -> Path | None:
    folder = artefact_dir()
    return folder if (folder / BACKEND).is_file() and (folder / SERVER).is_file() else None


def ensure_built(progress: Callable[[str], None] = lambda _line: None) -> Path:
    """The folder holding libggml-rpc.so and rpc-server, building them first if needed."""
    if sys.platform != "linux":
        raise RPCBuildError(
            "Building the RPC backend is supported on Linux only for now.",
            "Use llama.cpp's own rpc-server build on this system.",
        )
    folder = artefact_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits for the first build
        if built():
            return folder
        version = importlib.metadata.version(PACKAGE)
        progress(
            f"Building llama.cpp's RPC backend and rpc-server for {PACKAGE} {version} "
            f"(once, about a minute) into {folder}"
        )
        started = time.monotonic()

        def step(line: str) -> None:  # each step with the time spent so far
            progress(f"{line} ({clock(time.monotonic() - started)} so far)")

        with tempfile.TemporaryDirectory(prefix="r1local-rpc-") as tmp:
            src = _sources(version, Path(tmp), step)
            _compile(src, folder, step)
        progress(f"RPC build ready in {clock(time.monotonic() - started)}.")
    return folder


def _sources(version: str, tmp: Path, progress: Callable[[str], None]) -> Path:
    """The vendored llama.cpp files the build needs, from the sdist (pip's cache makes it quick)."""
    progress(f"  1/3 fetching the {PACKAGE} {version} sources")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--no-binary",
        ":all:",
        f"{PACKAGE}=={version}",
        "-d",
        str(tmp),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True)
    archives = list(tmp.glob("*.tar.gz"))
    if run.returncode or not archives:
        raise RPCBuildError(
            f"Could not download the {PACKAGE} {version} sources: "
            f"{(run.stderr.strip().splitlines() or ['no archive'])[-1]}",
            "Check the connection to PyPI (pip download), then try again.",
        )
    out = tmp / "src"
    with tarfile.open(archives[0]) as tar:
        for member in tar.getmembers():
            inner = member.name.partition(_VENDOR)[2]
            private_header = inner.startswith("ggml/src/") and inner.endswith(".h") and inner.count("/") == 2
            if member.isfile() and (inner.startswith(_SOURCES) or private_header):
                member.name = inner
                tar.extract(member, out, filter="data")
    return out


def _compile(src: Path, folder: Path, progress: Callable[[str], None]) -> None:
    lib = llama_lib_dir()
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx:
        raise RPCBuildError("No C++ compiler found to build the RPC backend.", "Install one: apt-get install g++")
    common = [
        cxx,
        "-O2",
        "-std=c++17",
        "-fPIC",
        f"-I{src / 'ggml/include'}",
        f"-I{src / 'ggml/src'}",
        "-DGGML_SHARED",
        "-DGGML_BACKEND_SHARED",
        f"-L{lib}",
        f"-Wl,-rpath,{lib}",
    ]
    steps = [
        (
            "2/3 compiling the RPC backend (ggml-rpc)",
            [
                *common,
                "-shared",
                "-fvisibility=hidden",
                "-DGGML_BACKEND_DL",
                "-DGGML_BACKEND_BUILD",
                str(src / "ggml/src/ggml-rpc/ggml-rpc.cpp"),
                str(src / "ggml/src/ggml-rpc/transport.cpp"),
                "-l:libggml-base.so",
                "-pthread",
                "-o",
                str(folder / f"{BACKEND}.tmp"),
            ],
        ),
        (
            "3/3 compiling rpc-server",
            [
                *common,
                str(src / "tools/rpc/rpc-server.cpp"),
                "-l:libggml.so",
                "-l:libggml-base.so",
                "-pthread",
                "-o",
                str(folder / f"{SERVER}.tmp"),
            ],
        ),
    ]
    for label, cmd in steps:
        progress(f"  {label}")
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            raise RPCBuildError(
                f"Compiling the RPC backend failed: {run.stderr.strip()[-800:]}",
                "Install a C++17 compiler (g++ 9 or newer) and try again.",
            )
    for name in (BACKEND, SERVER):  # rename last: a half-built folder never looks built
        os.replace(folder / f"{name}.tmp", folder / name)
