"""`r1local accelerate`'s prebuilt route against a PEP 503 wheel index on loopback serving a real
llama-cpp-python wheel (the installed version, taken from pip's cache): the tag from the detection,
the wheel found, downloaded, installed into a fresh virtual environment and verified, and every
fallback to the source build with its reason (no such version, no such tag, a damaged wheel, an
index that refuses or never answers). The shared environment is never touched."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
import venv
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from testhub import BlackHole, refused_url
from typer.testing import CliRunner

from r1local.accelerate import prebuilt
from r1local.cli import app
from r1local.errors import BuildError
from r1local.hardware import GPU, ReplayProbe, detect

VERSION = importlib.metadata.version("llama-cpp-python")
SNAPSHOTS = Path(__file__).parent / "snapshots"
runner = CliRunner()


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The installed llama-cpp-python as a wheel: pip finds the one it built at install time in its cache."""
    folder = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", f"llama-cpp-python=={VERSION}", "-w", str(folder)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:  # not in the cache: pip compiles; stop it rather than wait 15 minutes
        os.killpg(proc.pid, 9)
        pytest.fail(f"pip holds no built wheel of llama-cpp-python {VERSION} in its cache (it started compiling)")
    (found,) = folder.glob("llama_cpp_python-*.whl") or pytest.fail(output[-2000:])
    return found


class Index:
    """A PEP 503 index in a folder: <tag>/llama-cpp-python/index.html listing the wheels beside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_Quiet, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def serve(
        self, tag: str, wheel: Path, *, name: str | None = None, data: bytes | None = None, sha: str | None = None
    ) -> None:
        folder = self.root / tag / "llama-cpp-python"
        folder.mkdir(parents=True, exist_ok=True)
        name = name or wheel.name
        body = wheel.read_bytes() if data is None else data
        (folder / name).write_bytes(body)
        digest = sha or hashlib.sha256(body).hexdigest()
        (folder / "index.html").write_text(f'<html><body><a href="{name}#sha256={digest}">{name}</a></body></html>')


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def index(tmp_path, monkeypatch):
    served = Index(tmp_path / "index")
    monkeypatch.setenv("R1LOCAL_WHEEL_INDEX", served.url)
    monkeypatch.setenv("R1LOCAL_BUILD_CACHE", str(tmp_path / "build-cache"))
    yield served
    served.server.shutdown()
    served.server.server_close()


def machine(name: str):
    return detect(ReplayProbe.load(SNAPSHOTS / f"{name}.json"))


def test_the_tag_comes_from_the_same_detection_as_hw():
    rtx = [GPU("RTX 4090", "nvidia", False, compute_capability="8.9")]
    assert prebuilt.cuda_tag((12, 4), rtx) == "cu124" and prebuilt.cuda_tag((12, 9), rtx) == "cu125"
    assert prebuilt.cuda_tag((13, 2), rtx) == "cu132" and prebuilt.cuda_tag((11, 8), rtx) == "cu118"
    # CUDA 13 wheels need compute capability 7.5; the CUDA 11.8 ones stop at 8.9
    assert prebuilt.cuda_tag((13, 0), [GPU("GTX 1080", "nvidia", False, compute_capability="6.1")]) == "cu125"
    with pytest.raises(prebuilt.Unavailable, match="no CUDA wheel suits driver CUDA 11.8"):
        prebuilt.cuda_tag((11, 8), [GPU("B200", "nvidia", False, compute_capability="10.0")])
    with pytest.raises(prebuilt.Unavailable, match="could not be read"):
        prebuilt.cuda_tag(None, rtx)
    apple, amd = machine("apple-m3-pro"), machine("amd-radeon-desktop")
    assert prebuilt.wheel_tag("metal", apple, apple.gpus) == "metal"
    assert prebuilt.wheel_tag("hip", amd, amd.gpus) == "rocm72"
    assert prebuilt.wheel_tag("vulkan", amd, amd.gpus) == "vulkan"
    assert prebuilt.wheel_tag("cpu", amd, []) == "cpu"
    with pytest.raises(prebuilt.Unavailable, match="publishes no sycl wheels"):
        prebuilt.wheel_tag("sycl", amd, amd.gpus)


def test_the_wheel_of_the_installed_version_is_found_and_checked(index, wheel, tmp_path):
    index.serve("vulkan", wheel)
    found = prebuilt.find("vulkan", VERSION)
    assert found.filename == wheel.name and found.sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()
    path = prebuilt.download(found, tmp_path / "got")
    assert path.read_bytes() == wheel.read_bytes()


@pytest.mark.parametrize(
    "case, reason",
    [
        (
            "other version",
            f"the index has no llama-cpp-python {VERSION} wheel for vulkan on this platform (it has 0.3.1)",
        ),
        ("no tag", "the wheel index has no vulkan folder"),
        ("bad sha", "is damaged: its SHA-256 differs from the index's"),
        ("not a zip", "is damaged (the archive does not read back)"),
    ],
)
def test_each_way_without_a_usable_wheel_has_its_reason(index, wheel, tmp_path, case, reason):
    if case == "other version":
        index.serve("vulkan", wheel, name=wheel.name.replace(f"-{VERSION}-", "-0.3.1-"))
    elif case == "no tag":
        index.serve("cpu", wheel)
    elif case == "bad sha":
        index.serve("vulkan", wheel, sha="0" * 64)
    else:
        junk = b"PK\x03\x04 not a wheel"
        index.serve("vulkan", wheel, data=junk, sha=hashlib.sha256(junk).hexdigest())
    with pytest.raises(prebuilt.Unavailable, match=reason.replace("(", r"\(").replace(")", r"\)")):
        prebuilt.download(prebuilt.find("vulkan", VERSION), tmp_path / "got")
    assert not list((tmp_path / "got").glob("*.whl")) if (tmp_path / "got").exists() else True


@pytest.mark.parametrize("kind", ["refuses", "never answers"])
def test_an_index_that_does_not_answer_is_said(monkeypatch, kind):
    monkeypatch.setenv("R1LOCAL_WHEEL_INDEX_TIMEOUT", "1")
    if kind == "refuses":
        monkeypatch.setenv("R1LOCAL_WHEEL_INDEX", refused_url())
        with pytest.raises(prebuilt.Unavailable, match="did not answer .ConnectError"):
            prebuilt.find("vulkan", VERSION)
    else:
        with BlackHole() as url:
            monkeypatch.setenv("R1LOCAL_WHEEL_INDEX", url)
            with pytest.raises(prebuilt.Unavailable, match="did not answer .ReadTimeout"):
                prebuilt.find("vulkan", VERSION)


def test_the_command_falls_back_to_the_source_build_with_the_reason(index, wheel):
    index.serve("vulkan", wheel, name=wheel.name.replace(f"-{VERSION}-", "-0.3.1-"))
    result = runner.invoke(app, ["accelerate", "--backend", "vulkan", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Looking for a prebuilt Vulkan wheel of llama-cpp-python {VERSION} (vulkan) on {index.url} ..."
    assert lines[1] == (
        f"No prebuilt wheel: the index has no llama-cpp-python {VERSION} wheel for vulkan on this "
        "platform (it has 0.3.1); building from source instead."
    )
    assert "Source build: Vulkan" in result.output and "Dry run: nothing built." in result.output
    # --source goes straight to the build
    forced = runner.invoke(app, ["accelerate", "--backend", "vulkan", "--dry-run", "--source"])
    assert "Looking for a prebuilt" not in forced.output and "Source build: Vulkan" in forced.output


def test_dry_run_names_the_wheel_it_would_install(index, wheel):
    index.serve("vulkan", wheel)
    result = runner.invoke(app, ["accelerate", "--backend", "vulkan", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"Dry run: {wheel.name} would be installed." in result.output and "Source build" not in result.output


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A fresh virtual environment that runs r1local: its own site-packages first on the path, this
    project's sources and the shared environment's packages after it. Whatever `accelerate` installs
    lands there, never in the shared environment."""
    root = tmp_path_factory.mktemp("fresh")
    venv.create(root / "venv", with_pip=True)
    python = root / "venv" / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    shared = Path(sysconfig.get_paths()["purelib"])
    path = os.pathsep.join([str(site), str(Path(__file__).parents[1] / "src"), str(shared)])
    before = (shared / "llama_cpp" / "__init__.py").stat().st_mtime
    yield python, site, path
    assert (shared / "llama_cpp" / "__init__.py").stat().st_mtime == before  # the shared environment untouched
    shutil.rmtree(root)


def accelerate_in(fresh, *args: str, path: str | None = None) -> tuple[int, str]:
    python, _, pythonpath = fresh
    env = {**os.environ, "PYTHONPATH": pythonpath, **({"PATH": path} if path else {})}
    result = subprocess.run(
        [python, "-m", "r1local", "accelerate", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    return result.returncode, result.stdout + result.stderr


def test_the_prebuilt_wheel_is_tried_installed_and_verified_in_a_fresh_environment(index, wheel, fresh):
    """The wheel is tried from a folder beside the installed build (it loads and decodes), then
    installed, and the verification says where llama.cpp put the layers: the wheel served under the
    Vulkan tag is the CPU build, so it says, in one line, that it found no Vulkan device."""
    index.serve("vulkan", wheel)
    code, output = accelerate_in(fresh, "--backend", "vulkan")
    assert f"Downloading {wheel.name}" in output and "Source build" not in output, output
    assert (fresh[1] / "llama_cpp" / "__init__.py").is_file()  # installed into the fresh environment
    assert code == BuildError.exit_code, output
    assert (
        "error: llama.cpp did not put the test model on a GPU: the build has CPU but found no Vulkan device" in output
    )


def test_a_prebuilt_wheel_that_does_not_load_here_is_never_installed(index, fresh, tmp_path):
    """A wheel built for another system (its library does not load) is tried beside the installed
    build, refused with the reason, and the source build follows (here it stops at the toolchain)."""
    broken = tmp_path / f"llama_cpp_python-{VERSION}-py3-none-any.whl"
    info = f"llama_cpp_python-{VERSION}.dist-info"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("llama_cpp/__init__.py", "from .llama_cpp import *\n")
        missing = "libcudart.so.12: cannot open shared object file: No such file or directory"
        archive.writestr("llama_cpp/llama_cpp.py", f"raise OSError({missing!r})\n")  # ctypes without the CUDA runtime
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: {VERSION}\n")
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/RECORD", "")
    index.serve("vulkan", broken)
    code, output = accelerate_in(fresh, "--backend", "vulkan", path=str(tmp_path / "no-tools"))
    assert "The prebuilt wheel does not work here (Loading a model with the new build failed: " in output, output
    assert "libcudart.so.12" in output and "; building from source instead." in output, output
    assert "Source build: Vulkan" in output and code == BuildError.exit_code and "not found" in output
    installed = fresh[1] / "llama_cpp" / "__init__.py"
    assert not installed.is_file() or "libcudart" not in installed.read_text()


def test_a_vulkan_build_without_any_vulkan_driver_says_so_in_one_line(tmp_path, monkeypatch):
    """With no ICD installed, ggml's Vulkan backend never registers: the library shipped with
    llama_cpp is what tells that the build has Vulkan, and the missing driver is named."""
    from r1local.hardware import llama_build
    from r1local.hardware.model import GGMLDevice, LlamaBuild

    package = tmp_path / "llama_cpp"
    (package / "lib").mkdir(parents=True)
    for name in ("libggml-base.so", "libggml-cpu.so", "libggml-vulkan.so", "libggml-rpc.so", "libllama.so"):
        (package / "lib" / name).write_bytes(b"")
    assert llama_build.shipped_backends(package) == ["Vulkan"]
    monkeypatch.setattr(llama_build, "VULKAN_DRIVER_DIRS", [str(tmp_path / "icd.d")])
    monkeypatch.delenv("VK_ICD_FILENAMES", raising=False)
    monkeypatch.delenv("VK_DRIVER_FILES", raising=False)
    assert llama_build.vulkan_drivers() == []
    cpu = [GGMLDevice("CPU", "AMD EPYC", "cpu")]
    build = LlamaBuild(
        "0.3.36",
        "CPU : AVX2 = 1 |",
        False,
        devices=cpu,
        registries=["CPU", "RPC"],
        shipped=["Vulkan"],
        vulkan_drivers=[],
    )
    note = build.cpu_fallback_note()
    assert "\n" not in note and note.startswith(
        "this llama.cpp build has Vulkan but found no Vulkan device: running on the CPU (no Vulkan driver is installed"
    )
    # a driver is there but shows no device (hidden, broken): the same line, the generic cause
    (tmp_path / "icd.d").mkdir()
    (tmp_path / "icd.d" / "lvp_icd.x86_64.json").write_text("{}")
    assert llama_build.vulkan_drivers() == ["lvp_icd.x86_64.json"]
    build.vulkan_drivers = llama_build.vulkan_drivers()
    assert "check the GPU driver" in build.cpu_fallback_note()
    assert LlamaBuild("0.3.36", "", False, devices=cpu, registries=["CPU"]).cpu_fallback_note() is None
