"""Build llama.cpp's `llama-bench`, `llama-server` and `llama-batched-bench` from the very llama.cpp
that our engine runs.

The sources come from the llama-cpp-python sdist of the installed version (it vendors llama.cpp at
the commit its wheel was built from), and the CPU flags match pip's build of it: llama.cpp's
defaults, which mean GGML_NATIVE=ON (-march=native), OpenMP and a Release build. Binaries land in
~/.cache/r1local-peers/<version>/bin; a second run finds them there and builds nothing.

    python scripts/build_peers.py            # prints the bin directory
    python scripts/build_peers.py --installed-ggml --sdist FILE   # llama-server on the installed ggml

With --installed-ggml only llama-server is built, and it links the ggml libraries of the installed
llama-cpp-python (a CUDA build from `r1local accelerate`, say) instead of compiling ggml again: both
servers then run the very same kernels, and a GPU machine saves the GPU backend's second compile.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

TARGETS = ("llama-bench", "llama-server", "llama-batched-bench")  # the last: kernel speed against batch size
CACHE = Path(os.environ.get("R1LOCAL_PEERS_CACHE", Path.home() / ".cache" / "r1local-peers"))

# Everything pip's build leaves at llama.cpp's defaults stays so; what we turn off is what these
# binaries do not need, or what would reach the network (curl, OpenSSL, the prebuilt web UI).
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)


def installed_version() -> str:
    return importlib.metadata.version("llama-cpp-python")


def peer_dir(version: str | None = None, flags: str = "") -> Path:
    """The build folder of a version; extra CMake flags (a GPU backend) get a folder of their own."""
    suffix = f"-{hashlib.sha256(flags.encode()).hexdigest()[:8]}" if flags else ""
    return CACHE / f"{version or installed_version()}{suffix}"


def binary(name: str, version: str | None = None) -> Path:
    """Path of a built peer binary; raises FileNotFoundError with the command that builds it."""
    path = peer_dir(version) / "bin" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python scripts/build_peers.py` first")
    return path


def fetch_sources(root: Path, version: str, sdist: Path | None = None) -> Path:
    """Download the sdist (once, unless given) and extract only vendor/llama.cpp from it."""
    src = root / "llama.cpp"
    if (src / "CMakeLists.txt").exists():
        return src
    sdist_dir = root / "sdist"
    sdist = sdist or next(sdist_dir.glob("llama_cpp_python-*.tar.gz"), None)
    if sdist is None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"llama-cpp-python=={version}",
                "-d",
                str(sdist_dir),
            ],
            check=True,
        )
        sdist = next(sdist_dir.glob("llama_cpp_python-*.tar.gz"))
    prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    staging = root / "llama.cpp.partial"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(sdist) as archive:
        members = []
        for member in archive.getmembers():
            if member.name.startswith(prefix):
                member.name = member.name[len(prefix) :]
                members.append(member)
        archive.extractall(staging, members=members, filter="data")
    staging.rename(src)
    return src


def build(version: str, jobs: int, flags: str = "") -> Path:
    """Build the peers with llama.cpp's defaults plus `flags` ("-DGGML_CUDA=on ...")."""
    root = peer_dir(version, flags)
    bin_dir = root / "bin"
    if all((bin_dir / t).exists() for t in TARGETS):
        return bin_dir
    src = fetch_sources(root, version)
    build_dir = root / "build"
    nice = ["nice", "-n", "10"]
    subprocess.run(
        [*nice, "cmake", "-S", str(src), "-B", str(build_dir), "-G", "Ninja", *CMAKE_FLAGS, *flags.split()],
        check=True,
    )
    subprocess.run(
        [*nice, "cmake", "--build", str(build_dir), "-j", str(jobs), "--target", *TARGETS],
        check=True,
    )
    bin_dir.mkdir(exist_ok=True)
    for target in TARGETS:
        shutil.copy2(build_dir / "bin" / target, bin_dir / target)
    return bin_dir


def installed_ggml_package(src: Path, dest: Path) -> Path:
    """A CMake package `ggml` for the libraries inside the installed llama-cpp-python (its wheel
    ships the .so files without CMake files), with the headers of the same sources."""
    import llama_cpp  # the installed build: its lib/ holds libggml*.so

    lib = Path(llama_cpp.__file__).parent / "lib"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "ggml-config.cmake").write_text(f"""\
add_library(ggml::ggml SHARED IMPORTED)
set_target_properties(ggml::ggml PROPERTIES
    IMPORTED_LOCATION "{lib / "libggml.so"}"
    INTERFACE_INCLUDE_DIRECTORIES "{src / "ggml" / "include"}"
    INTERFACE_LINK_LIBRARIES "{lib / "libggml-base.so"}")
""")
    return dest


def build_on_installed_ggml(version: str, jobs: int, sdist: Path | None = None) -> Path:
    """llama-server from the sources of `version`, linked to the installed llama-cpp-python's ggml."""
    root = CACHE / f"{version}-installed-ggml"
    server = root / "bin" / "llama-server"
    if server.exists():
        return server.parent
    src = fetch_sources(root, version, sdist)
    build_dir = root / "build"
    package = installed_ggml_package(src, root / "ggml-cmake")
    flags = [f for f in CMAKE_FLAGS if not f.startswith("-DGGML_")]
    subprocess.run(
        [
            "cmake",
            "-S",
            str(src),
            "-B",
            str(build_dir),
            "-G",
            "Ninja",
            *flags,
            "-DLLAMA_USE_SYSTEM_GGML=ON",
            f"-Dggml_DIR={package}",
        ],
        check=True,
    )
    subprocess.run(["cmake", "--build", str(build_dir), "-j", str(jobs), "--target", "llama-server"], check=True)
    server.parent.mkdir(exist_ok=True)
    shutil.copy2(build_dir / "bin" / "llama-server", server)
    return server.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", help="llama-cpp-python version (default: the installed one)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    parser.add_argument("--cmake", default="", help='extra CMake flags, such as "-DGGML_CUDA=on"')
    parser.add_argument(
        "--installed-ggml",
        action="store_true",
        help="build llama-server alone, on the installed llama-cpp-python's ggml",
    )
    parser.add_argument("--sdist", type=Path, help="the llama-cpp-python source archive (default: download it)")
    args = parser.parse_args()
    version = args.version or installed_version()
    if args.installed_ggml:
        print(build_on_installed_ggml(version, args.jobs, args.sdist))
    else:
        print(build(version, args.jobs, args.cmake))


if __name__ == "__main__":
    main()
