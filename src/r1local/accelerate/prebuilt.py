"""The prebuilt route: llama-cpp-python's own per-backend wheel index, before any compiler runs.

llama-cpp-python publishes wheels per backend at https://abetlen.github.io/llama-cpp-python/whl/<tag>/
(its README: cpu, cu118 to cu132, metal, rocm72, hip-radeon, vulkan), as a PEP 503 index. The tag
comes from the same detection as `r1local hw`: the backend for this PC's GPU, and for CUDA the
newest toolkit the driver runs that still compiles for the card. Only the installed version is
taken (a wheel of another version would change the engine under r1local); every way this can fail
(no answer, no such version or tag, a damaged wheel) is a `Unavailable` with the reason, and the
caller builds from source instead. R1LOCAL_WHEEL_INDEX points at another index (a mirror, the tests').
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import httpx
from packaging.tags import sys_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from ..hardware import GPU, Hardware
from .build import PACKAGE

DEFAULT_INDEX = "https://abetlen.github.io/llama-cpp-python/whl"
# (tag, CUDA version it was built with, lowest and highest compute capability it runs on), newest first
CUDA_TAGS = [
    ("cu132", (13, 2), 7.5, None),
    ("cu130", (13, 0), 7.5, None),
    ("cu125", (12, 5), 6.0, None),
    ("cu124", (12, 4), 6.0, None),
    ("cu123", (12, 3), 6.0, None),
    ("cu122", (12, 2), 6.0, None),
    ("cu121", (12, 1), 6.0, None),
    ("cu118", (11, 8), 6.0, 8.9),
]


class Unavailable(Exception):
    """No usable prebuilt wheel; the message says why (shown before the source build starts)."""


@dataclass(frozen=True)
class Wheel:
    url: str
    filename: str
    sha256: str | None  # from the index's #sha256= fragment, when it gives one


def index_url() -> str:
    return os.environ.get("R1LOCAL_WHEEL_INDEX", DEFAULT_INDEX).rstrip("/")


def timeout() -> httpx.Timeout:
    """R1LOCAL_WHEEL_INDEX_TIMEOUT seconds (default 30) between bytes; a connection within 10 s."""
    try:
        read = max(float(os.environ.get("R1LOCAL_WHEEL_INDEX_TIMEOUT", "30")), 0.1)
    except ValueError:
        read = 30.0
    return httpx.Timeout(read, connect=min(read, 10.0))


def cuda_driver_version() -> tuple[int, int] | None:
    """The newest CUDA version the installed NVIDIA driver runs (NVML, else nvidia-smi's header)."""
    import pynvml

    try:
        pynvml.nvmlInit()
        try:
            v = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        finally:
            pynvml.nvmlShutdown()
        return v // 1000, v % 1000 // 10
    except pynvml.NVMLError:  # no driver library here: nvidia-smi may still answer
        pass
    smi = shutil.which("nvidia-smi")
    try:
        out = subprocess.run([smi], capture_output=True, text=True, timeout=10, check=False).stdout if smi else ""
    except (OSError, subprocess.TimeoutExpired):
        return None
    if "CUDA Version:" not in out:
        return None
    major, _, minor = out.split("CUDA Version:")[1].split()[0].partition(".")
    return (int(major), int(minor or 0)) if major.isdigit() and (minor or "0").isdigit() else None


def cuda_tag(driver: tuple[int, int] | None, gpus: list[GPU]) -> str:
    """The newest CUDA wheel the driver runs and that compiles for every card here."""
    if driver is None:
        raise Unavailable("the NVIDIA driver's CUDA version could not be read (nvidia-smi does not answer)")
    caps = [float(g.compute_capability) for g in gpus if g.vendor == "nvidia" and g.compute_capability]
    for tag, built, low, high in CUDA_TAGS:
        if built <= driver and all(low <= c and (high is None or c <= high) for c in caps):
            return tag
    raise Unavailable(
        f"no CUDA wheel suits driver CUDA {driver[0]}.{driver[1]} with compute capability " + ", ".join(map(str, caps))
    )


def wheel_tag(backend: str, hw: Hardware, gpus: list[GPU], cuda_version: tuple[int, int] | None = None) -> str:
    """The index tag for `backend` ("cpu", "cuda", "hip", "vulkan", "metal"...) on this PC."""
    if backend == "cpu":
        return "cpu"
    if backend == "cuda":
        return cuda_tag(cuda_version, gpus)
    if backend == "metal" and hw.system == "Darwin":
        return "metal"
    if backend == "hip" and hw.system in ("Linux", "Windows"):
        return "rocm72" if hw.system == "Linux" else "hip-radeon"
    if backend == "vulkan" and hw.system in ("Linux", "Windows"):
        return "vulkan"
    raise Unavailable(f"llama-cpp-python publishes no {backend} wheels for {hw.system}")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a" and (href := dict(attrs).get("href")):
            self.hrefs.append(href)


def find(tag: str, version: str, index: str | None = None) -> Wheel:
    """The wheel of `version` under `tag` that this interpreter and platform can install."""
    page = f"{index or index_url()}/{tag}/{canonicalize_name(PACKAGE)}/"
    try:
        response = httpx.get(page, timeout=timeout(), follow_redirects=True)
    except httpx.TransportError as e:
        raise Unavailable(f"the wheel index {page} did not answer ({type(e).__name__}: {e})") from e
    if response.status_code == 404:
        raise Unavailable(f"the wheel index has no {tag} folder ({page}: 404)")
    if response.status_code != 200:
        raise Unavailable(f"the wheel index answered {response.status_code} for {page}")
    links = _Links()
    links.feed(response.text)
    supported = set(sys_tags())
    others: set[str] = set()
    for href in links.hrefs:
        url, fragment = urldefrag(urljoin(page, href))
        filename = url.rsplit("/", 1)[-1]
        try:
            name, found, _, tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue
        if name != canonicalize_name(PACKAGE) or not tags & supported:
            continue
        if found != Version(version):
            others.add(str(found))
            continue
        sha = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
        return Wheel(url, filename, sha)
    newest = ", ".join(sorted(others, key=Version, reverse=True)[:3])
    raise Unavailable(
        f"the index has no {PACKAGE} {version} wheel for {tag} on this platform"
        + (f" (it has {newest})" if newest else "")
    )


def download(wheel: Wheel, folder: Path) -> Path:
    """The wheel in `folder`, checked against the index's SHA-256 and as a zip archive."""
    folder.mkdir(parents=True, exist_ok=True)
    path, partial = folder / wheel.filename, folder / (wheel.filename + ".partial")
    digest = hashlib.sha256()
    try:
        with httpx.stream("GET", wheel.url, timeout=timeout(), follow_redirects=True) as response:
            if response.status_code != 200:
                raise Unavailable(f"the wheel index answered {response.status_code} for {wheel.filename}")
            with partial.open("wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    except httpx.TransportError as e:
        partial.unlink(missing_ok=True)
        raise Unavailable(f"the download of {wheel.filename} failed ({type(e).__name__}: {e})") from e
    if wheel.sha256 and digest.hexdigest() != wheel.sha256:
        partial.unlink()
        raise Unavailable(f"{wheel.filename} is damaged: its SHA-256 differs from the index's")
    try:
        with zipfile.ZipFile(partial) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        bad = "the archive"
    if bad is not None:
        partial.unlink()
        raise Unavailable(f"{wheel.filename} is damaged ({bad} does not read back)")
    partial.replace(path)
    return path
