"""Build llama-cpp-python, at the version installed, with a GPU backend, and install it.

The build makes a wheel from the published source (never pip's cached CPU wheel), keeps it in
r1local's build cache under a key of version, backend and CMake flags, and installs it only once
it built: a failed build leaves the installed llama-cpp-python as it was.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import config
from ..errors import BuildError
from . import patches

PACKAGE = "llama-cpp-python"
STEP = re.compile(r"^\s*\[(\d+)/(\d+)\]\s+(.*)$")  # ninja: "[12/521] /usr/bin/c++ ... -c path/file.cpp"
KEY_LINE = re.compile(r"error|fatal|failed|could not|not found|no such file", re.IGNORECASE)


@dataclass
class Progress:
    elapsed: float
    done: int
    total: int
    step: str  # what the compiler works on: "ggml-vulkan.cpp", "configuring", "linking libllama.so"


@dataclass
class Build:
    version: str
    backend: str
    cmake_args: str
    env: dict[str, str]  # extra environment for the compilers (CUDACXX, HIPCXX...)

    @property
    def key(self) -> str:
        blob = f"{self.version} {self.cmake_args} {sorted(self.env.items())} {sys.implementation.cache_tag}"
        return f"{self.version}-{self.backend}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"

    @property
    def folder(self) -> Path:
        return config.build_cache() / self.key

    @property
    def log_path(self) -> Path:
        return self.folder / "build.log"

    def cached_wheel(self) -> Path | None:
        return next(iter(sorted(self.folder.glob("*.whl"))), None)

    def gguf_py(self) -> Path:
        """llama.cpp's own GGUF writer from the same sources (the verification model is written with it)."""
        return self.folder / "gguf-py"


def clock(seconds: float) -> str:
    """Elapsed time as a build shows it: 0m07s, 12m40s."""
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


def back_to_cpu(version: str) -> str:
    """The command that puts the CPU build back."""
    return f"{sys.executable} -m pip install --force-reinstall --no-deps {PACKAGE}=={version}"


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args]


def fetch_source(version: str, dest: Path, log) -> Path:
    """The sdist of `version` through pip (its index, mirrors and find-links settings)."""
    cmd = _pip("download", "--no-deps", "--no-binary", ":all:", f"{PACKAGE}=={version}", "-d", str(dest))
    log.write(f"$ {' '.join(cmd)}\n")
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write(res.stdout)
    found = sorted(dest.glob("llama_cpp_python-*.tar.gz"))
    if res.returncode != 0 or not found:
        raise BuildError(
            f"Could not download the {PACKAGE} {version} source: {key_lines(res.stdout)[-1:] or ['pip failed']}",
            "Check the network or the package index, or pass the source with --source FILE.tar.gz.",
        )
    return found[0]


def sdist_version(sdist: Path) -> str | None:
    """The version in a source archive's name (llama_cpp_python-0.3.36.tar.gz -> 0.3.36)."""
    m = re.fullmatch(r"llama_cpp_python-(.+)\.tar\.gz", sdist.name)
    return m.group(1) if m else None


def unpack(sdist: Path, dest: Path) -> Path:
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):  # refuse links and paths out of dest
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
    (top,) = [p for p in dest.iterdir() if p.is_dir()]
    return top


def describe(command: str) -> str:
    """A ninja step as a few words: the file compiled or linked."""
    if m := re.search(r"\s-c\s+(\S+)", command):
        return Path(m.group(1)).name
    if m := re.search(r"\s--source\s+(\S+)", command):  # ggml-vulkan's shader generator
        return f"shaders of {Path(m.group(1)).name}"
    if m := re.search(r"\s-o\s+(\S+)", command):
        return f"linking {Path(m.group(1)).name}"
    return command.split()[0][-60:] if command.split() else ""


def key_lines(log_text: str, limit: int = 12) -> list[str]:
    """The lines of a build log that say what went wrong."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    keys = list(dict.fromkeys(line for line in lines if KEY_LINE.search(line) and len(line) < 400))
    return keys[-limit:]


def compile_wheel(build: Build, source: Path, on_progress: Callable[[Progress], None], log) -> Path:
    """pip wheel of the unpacked source with CMAKE_ARGS, streaming ninja's steps to on_progress."""
    out = build.folder / "wheel.partial"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, **build.env, "CMAKE_ARGS": build.cmake_args}
    cmd = _pip("wheel", "-v", "--no-deps", "--no-cache-dir", "-w", str(out), str(source))
    log.write(f'$ CMAKE_ARGS="{build.cmake_args}" {" ".join(cmd)}\n')
    start = time.monotonic()
    done, total, step = 0, 0, "configuring"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, errors="replace")
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        if m := STEP.match(line):
            done, total, step = int(m.group(1)), int(m.group(2)), describe(m.group(3))
        on_progress(Progress(time.monotonic() - start, done, total, step))
    if proc.wait() != 0:
        log.flush()
        lines = key_lines(build.log_path.read_text(errors="replace"))
        raise BuildError(
            f"The {build.backend} build of {PACKAGE} {build.version} failed; the installed one is unchanged. "
            f"Key lines of the log ({build.log_path}):\n  " + "\n  ".join(lines or ["(none; read the log)"]),
            "Install what the errors name, then run `r1local accelerate` again.",
        )
    (wheel,) = out.glob("*.whl")
    final = build.folder / wheel.name
    wheel.replace(final)
    shutil.rmtree(out, ignore_errors=True)
    return final


def make_wheel(
    build: Build, on_progress: Callable[[Progress], None], sdist: Path | None = None
) -> tuple[Path, list[str]]:
    """The wheel for `build` (from the cache when it was built before) and the source fixes applied."""
    if wheel := build.cached_wheel():
        return wheel, []
    build.folder.mkdir(parents=True, exist_ok=True)
    with config.open_private(build.log_path, "w") as log, tempfile.TemporaryDirectory(prefix="r1local-build-") as tmp:
        sdist = sdist or fetch_source(build.version, Path(tmp), log)
        source = unpack(sdist, Path(tmp) / "src")
        fixes = patches.apply(source, build.backend)
        for fix in fixes:
            log.write(f"r1local: {fix}\n")
        log.flush()
        wheel = compile_wheel(build, source, on_progress, log)
        shutil.rmtree(build.gguf_py(), ignore_errors=True)
        shutil.copytree(source / "vendor" / "llama.cpp" / "gguf-py" / "gguf", build.gguf_py() / "gguf")
    return wheel, fixes


def run_verify(gguf_py: Path | None, env: dict[str, str] | None = None) -> dict:
    """The verification probe in a fresh interpreter (this one has the old build loaded); `gguf_py`
    is llama.cpp's GGUF writer, None for the `gguf` package installed here."""
    cmd = [sys.executable, "-m", "r1local.accelerate.verify", *([str(gguf_py)] if gguf_py else [])]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        detail = key_lines(res.stderr)[-3:] or res.stderr.strip().splitlines()[-3:] or [f"exit status {res.returncode}"]
        raise BuildError(
            "Loading a model with the new build failed: " + " | ".join(detail),
            "Run `r1local hw` to see what the build finds.",
        )
    return json.loads(lines[-1])


def gguf_writer(build: Build, sdist: Path | None = None) -> Path | None:
    """Where the verification finds a GGUF writer: the `gguf` package when installed (None), else
    llama.cpp's own from the sources."""
    return None if importlib.util.find_spec("gguf") else ensure_gguf_py(build, sdist)


def ensure_gguf_py(build: Build, sdist: Path | None = None) -> Path:
    """llama.cpp's GGUF writer for the verification model: kept from the build, else taken from the
    source (the installed build was made elsewhere)."""
    if not (build.gguf_py() / "gguf").is_dir():
        build.folder.mkdir(parents=True, exist_ok=True)
        with (
            config.open_private(build.log_path, "a") as log,
            tempfile.TemporaryDirectory(prefix="r1local-build-") as tmp,
        ):
            source = unpack(sdist or fetch_source(build.version, Path(tmp), log), Path(tmp) / "src")
            shutil.copytree(source / "vendor" / "llama.cpp" / "gguf-py" / "gguf", build.gguf_py() / "gguf")
    return build.gguf_py()


def stage(wheel: Path, folder: Path) -> None:
    """Unpack `wheel` into `folder` (pip --target) for a trial beside the installed build."""
    cmd = _pip("install", "--no-deps", "--no-cache-dir", "--target", str(folder), str(wheel))
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        raise BuildError(f"unpacking {wheel.name} failed: {(key_lines(res.stdout) or ['pip failed'])[-1]}")


def install(wheel: Path, version: str) -> None:
    """Replace the installed llama-cpp-python with `wheel` (nothing else is touched)."""
    cmd = _pip("install", "--force-reinstall", "--no-deps", "--no-cache-dir", str(wheel))
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        raise BuildError(
            f"Installing {wheel.name} failed: {(key_lines(res.stdout) or ['pip failed'])[-1]}",
            f"To put the CPU build back: {back_to_cpu(version)}",
        )
