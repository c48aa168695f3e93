"""`r1local accelerate` without building: the backend it picks for recorded machines, the toolchain
check and its install hints, the source fix for old Vulkan headers, the build's progress and
failure reports, and the command's dry run on this machine. Building for real: tests/test_gpu_offload.py."""

from __future__ import annotations

import itertools
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from r1local.accelerate import build, patches, toolchain
from r1local.accelerate.choice import choose
from r1local.cli import accelerate as accelerate_cli
from r1local.cli import app
from r1local.errors import BuildError, UsageError
from r1local.hardware import ReplayProbe, detect

SNAPSHOTS = Path(__file__).parent / "snapshots"
CPU_BUILD = {"version": "0.3.36", "system_info": "CPU : AVX2 = 1 |", "gpu_offload": False, "devices": []}
runner = CliRunner()


def machine(name: str, build: dict | None = CPU_BUILD):
    probe = ReplayProbe.load(SNAPSHOTS / f"{name}.json")
    probe.data["calls"] = {**probe.data.get("calls", {}), "llama_cpp.build": build}
    return detect(probe)


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """A PATH and include directories holding only the tools and headers a test puts there."""
    bin_dir, include = tmp_path / "bin", tmp_path / "include"
    bin_dir.mkdir()
    include.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    for var in ("CUDA_HOME", "CUDA_PATH", "ROCM_PATH", "VULKAN_SDK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(toolchain, "INCLUDE_DIRS", [str(include)])
    monkeypatch.setattr(toolchain, "TOOL_DIRS", {})

    def add(*names: str) -> None:
        for name in names:
            if "/" in name or name.endswith(".h"):
                (include / name).parent.mkdir(parents=True, exist_ok=True)
                (include / name).write_text("/* header */\n")
            else:
                (bin_dir / name).write_text("#!/bin/sh\n")
                (bin_dir / name).chmod(stat.S_IRWXU)

    return add


VULKAN_KIT = ("c++", "glslc", "vulkan/vulkan.h", "spirv/unified1/spirv.hpp")


def test_nvidia_with_cuda_toolkit_builds_cuda_for_the_cards_arch_only(tools):
    tools("c++", "nvcc")
    choice = choose(machine("nvidia-rtx4060-laptop"))
    assert choice.backend.name == "cuda" and choice.check.ok and not choice.already
    assert choice.cmake_args == "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=89 -DGGML_RPC=on"
    assert choice.build_env()["CUDACXX"].endswith("/nvcc")


def test_nvidia_without_cuda_but_with_vulkan_tools_takes_vulkan_and_says_why(tools):
    tools(*VULKAN_KIT)
    choice = choose(machine("nvidia-rtx4060-laptop"), os_release="ID=ubuntu\nID_LIKE=debian\n")
    assert choice.backend.name == "vulkan" and choice.check.ok
    assert "CUDA would be faster" in choice.why and "sudo apt-get install nvidia-cuda-toolkit" in choice.why


def test_missing_toolchain_names_the_packages_of_this_os(tools):
    tools("c++", "vulkan/vulkan.h")
    hw = machine("amd-radeon-desktop")  # gfx1100 on Linux: ROCm is the fast path
    choice = choose(hw, os_release='ID="fedora"\n')
    assert choice.backend.name == "hip" and choice.cmake_args == "-DGGML_HIP=on -DGPU_TARGETS=gfx1100 -DGGML_RPC=on"
    assert choice.check.install_hint() == "sudo dnf install rocm-hip-devel hipcc"
    vulkan = choose(hw, "vulkan", os_release="ID=debian\n")
    assert [r.what for r in vulkan.check.missing] == ["glslc", "spirv/unified1/spirv.hpp"]
    assert vulkan.check.install_hint() == "sudo apt-get install glslc spirv-headers"
    assert choose(hw, "vulkan", os_release="ID=arch\n").check.install_hint() == "sudo pacman -S shaderc spirv-headers"


def test_apple_has_metal_already_and_a_machine_without_gpu_needs_nothing(tools):
    mac = detect(ReplayProbe.load(SNAPSHOTS / "apple-m3-pro.json"))
    choice = choose(mac)
    assert choice.backend.name == "metal" and choice.already
    assert choose(machine("container-2cpu-2gb")) is None
    with pytest.raises(UsageError, match="Unknown backend 'opengl'"):
        choose(mac, "opengl")
    assert choose(mac, "ROCm").backend.name == "hip"


def test_os_family_from_os_release():
    assert toolchain.os_family("Linux", 'NAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\n') == "debian"
    assert toolchain.os_family("Linux", 'ID=rocky\nID_LIKE="rhel centos fedora"\n') == "fedora"
    assert toolchain.os_family("Linux", 'ID=opensuse-tumbleweed\nID_LIKE="opensuse suse"\n') == "suse"
    assert toolchain.os_family("Linux", None) == "linux"
    assert toolchain.os_family("Windows", None) == "windows"


GGML_VULKAN_BLOCK = """\
    std::vector<const char*> extensions;
    VkBool32 enable_best_practice = layer_settings;
    std::vector<vk::LayerSettingEXT> settings = {
        { "VK_LAYER_KHRONOS_validation", "validate_best_practices", vk::LayerSettingTypeEXT::eBool32, 1, &enable_best_practice },
    };
    vk::LayerSettingsCreateInfoEXT layer_setting_info(settings);
    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions, &layer_setting_info);
    vk_instance.instance = vk::createInstance(instance_create_info);
"""


def test_layer_settings_guard_is_applied_once_and_only_to_the_known_shape(tmp_path, tools):
    source = tmp_path / "llama_cpp_python-0.3.36"
    path = source / patches.VULKAN_SOURCE
    path.parent.mkdir(parents=True)
    path.write_text(GGML_VULKAN_BLOCK)
    assert patches.apply(source, "vulkan") == []  # headers not found: nothing to guard against
    tools("vulkan/vulkan_core.h")  # headers without VK_EXT_layer_settings, like Debian 12's 1.3.239
    assert patches.vulkan_headers_lack_layer_settings()
    (note,) = patches.apply(source, "vulkan")
    assert "VK_EXT_layer_settings" in note
    text = path.read_text()
    assert (
        text.count("#ifdef VK_EXT_layer_settings") == 1 and "#else\n" + patches.PLAIN_CREATE_INFO + "#endif\n" in text
    )
    assert text.index("#ifdef") < text.index("VkBool32") < text.index("#else") < text.index("vk::createInstance")
    assert patches.apply(source, "vulkan") == []  # already guarded
    assert path.read_text() == text
    assert patches.apply(source, "cuda") == []


def test_build_progress_names_the_step_and_failures_keep_key_lines(tmp_path, monkeypatch):
    """A real pip build of a source tree whose build fails: progress comes from its ninja-style
    lines, the error carries the log's key lines and the way back, and nothing is installed."""
    monkeypatch.setenv("R1LOCAL_BUILD_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "broken"
    source.mkdir()
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    )
    (source / "backend.py").write_text(
        "import sys\n"
        "def build_wheel(*a, **k):\n"
        "    print('[1/3] /usr/bin/c++ -O3 -c /src/ggml/ggml-vulkan.cpp -o ggml-vulkan.o', flush=True)\n"
        "    print('[2/3] /usr/bin/c++ -shared -o bin/libggml-vulkan.so a.o', flush=True)\n"
        "    print('/src/ggml/ggml-vulkan.cpp:5221:9: error: LayerSettingsCreateInfoEXT is not a member of vk', flush=True)\n"
        "    sys.exit(1)\n"
    )
    job = build.Build("0.3.36", "vulkan", "-DGGML_VULKAN=on -DGGML_RPC=on", {})
    job.folder.mkdir(parents=True)
    seen: list[build.Progress] = []
    with open(job.log_path, "w") as log, pytest.raises(BuildError) as failed:
        build.compile_wheel(job, source, seen.append, log)
    steps = [(p.done, p.total, p.step) for p in seen if p.total]
    assert steps[0] == (1, 3, "ggml-vulkan.cpp") and (2, 3, "linking libggml-vulkan.so") in steps
    assert all(b.elapsed >= a.elapsed for a, b in itertools.pairwise(seen))
    assert "LayerSettingsCreateInfoEXT is not a member of vk" in failed.value.message
    assert "the installed one is unchanged" in failed.value.message and str(job.log_path) in failed.value.message
    assert "error: LayerSettingsCreateInfoEXT" in job.log_path.read_text()
    assert job.cached_wheel() is None


def test_build_key_separates_backends_and_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("R1LOCAL_BUILD_CACHE", str(tmp_path))
    a = build.Build("0.3.36", "vulkan", "-DGGML_VULKAN=on -DGGML_RPC=on", {})
    b = build.Build("0.3.36", "cuda", "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=89 -DGGML_RPC=on", {})
    c = build.Build("0.3.36", "cuda", "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=86 -DGGML_RPC=on", {})
    assert len({a.key, b.key, c.key}) == 3 and a.folder.parent == tmp_path
    assert (
        build.back_to_cpu("0.3.36")
        == f"{sys.executable} -m pip install --force-reinstall --no-deps llama-cpp-python==0.3.36"
    )


def test_dry_run_on_this_machine_prints_the_plan_and_builds_nothing(tmp_path, monkeypatch, tools):
    monkeypatch.setenv("R1LOCAL_BUILD_CACHE", str(tmp_path / "cache"))
    tools(*VULKAN_KIT)
    result = runner.invoke(app, ["accelerate", "--backend", "vulkan", "--source", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert 'CMAKE_ARGS="-DGGML_VULKAN=on -DGGML_RPC=on"' in result.output
    assert (
        "Dry run: nothing built." in result.output and "--force-reinstall --no-deps llama-cpp-python==" in result.output
    )
    assert not (tmp_path / "cache").exists()


def test_missing_toolchain_stops_before_building_with_the_install_line(tmp_path, monkeypatch, tools):
    monkeypatch.setenv("R1LOCAL_BUILD_CACHE", str(tmp_path / "cache"))
    tools("c++")
    result = runner.invoke(app, ["accelerate", "--backend", "vulkan", "--source"])
    assert result.exit_code == BuildError.exit_code
    assert "needs vulkan/vulkan.h, glslc, spirv/unified1/spirv.hpp, not found" in result.output
    if os.path.exists("/etc/debian_version"):
        assert "sudo apt-get install libvulkan-dev glslc spirv-headers" in result.output
    assert not (tmp_path / "cache").exists()


def test_a_machine_without_llama_cpp_python_builds_its_first_from_an_archive(tmp_path, monkeypatch, tools):
    """The lent GPU machine has no llama-cpp-python: the archive's version is the one built."""
    monkeypatch.setenv("R1LOCAL_BUILD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(accelerate_cli, "detect_now", lambda: machine("nvidia-rtx4060-laptop", build=None))
    tools("c++", "nvcc")
    sdist = tmp_path / "llama_cpp_python-0.3.99.tar.gz"
    sdist.write_bytes(b"")
    result = runner.invoke(app, ["accelerate", "--backend", "cuda", "--sdist", str(sdist), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "llama-cpp-python 0.3.99, built from source" in result.output
    result = runner.invoke(app, ["accelerate", "--backend", "cuda", "--dry-run"])
    assert result.exit_code != 0 and "llama-cpp-python is not installed" in result.output


def test_the_command_line_starts_without_llama_cpp_python():
    """`r1local accelerate --sdist` must run where no llama-cpp-python is installed yet."""
    hide = (
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'llama_cpp':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "sys.argv = ['r1local', 'accelerate', '--help']\n"
        "from r1local.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]
    assert "--sdist" in done.stdout
