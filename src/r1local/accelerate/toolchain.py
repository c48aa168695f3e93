"""Is the toolchain a backend needs installed, and if not, which packages install it on this OS."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

# where SDKs put their tools when they are not on PATH
TOOL_DIRS = {
    "nvcc": ["$CUDA_HOME/bin", "$CUDA_PATH/bin", "/usr/local/cuda/bin", "/opt/cuda/bin"],
    "hipcc": ["$ROCM_PATH/bin", "/opt/rocm/bin"],
    "hipconfig": ["$ROCM_PATH/bin", "/opt/rocm/bin"],
    "icpx": ["/opt/intel/oneapi/compiler/latest/bin"],
    "glslc": ["$VULKAN_SDK/bin"],
}
INCLUDE_DIRS = ["$VULKAN_SDK/include", "/usr/include", "/usr/local/include", "/opt/homebrew/include"]


@dataclass(frozen=True)
class Requirement:
    what: str  # "glslc", "vulkan/vulkan.h"
    kind: str  # tool | header
    packages: dict[str, str]  # OS family -> what to install there


# OS family -> how its package manager installs things
INSTALLERS = {
    "debian": "sudo apt-get install {}",
    "fedora": "sudo dnf install {}",
    "arch": "sudo pacman -S {}",
    "suse": "sudo zypper install {}",
    "macos": "{}",
    "windows": "{}",
}
COMPILER = Requirement(
    "c++",
    "tool",
    {
        "debian": "build-essential",
        "fedora": "gcc-c++",
        "arch": "base-devel",
        "suse": "gcc-c++",
        "macos": "xcode-select --install",
        "windows": "Visual Studio Build Tools (C++ workload)",
    },
)
REQUIREMENTS: dict[str, list[Requirement]] = {
    "cuda": [
        Requirement(
            "nvcc",
            "tool",
            {
                "debian": "nvidia-cuda-toolkit",
                "fedora": "cuda-toolkit (NVIDIA's CUDA repository)",
                "arch": "cuda",
                "suse": "cuda-toolkit (NVIDIA's CUDA repository)",
                "windows": "the CUDA Toolkit from https://developer.nvidia.com/cuda-downloads",
            },
        )
    ],
    "hip": [
        Requirement(
            "hipcc",
            "tool",
            {
                "debian": "rocm-hip-sdk (AMD's ROCm repository)",
                "fedora": "rocm-hip-devel hipcc",
                "arch": "rocm-hip-sdk",
                "suse": "rocm-hip-sdk (AMD's ROCm repository)",
                "windows": "the HIP SDK from https://www.amd.com/en/developer/resources/rocm-hub/hip-sdk.html",
            },
        )
    ],
    "vulkan": [
        Requirement(
            "vulkan/vulkan.h",
            "header",
            {
                "debian": "libvulkan-dev",
                "fedora": "vulkan-headers vulkan-loader-devel",
                "arch": "vulkan-headers vulkan-icd-loader",
                "suse": "vulkan-devel",
                "macos": "brew install vulkan-headers vulkan-loader",
                "windows": "the Vulkan SDK from https://vulkan.lunarg.com",
            },
        ),
        Requirement(
            "glslc",
            "tool",
            {
                "debian": "glslc",
                "fedora": "glslc",
                "arch": "shaderc",
                "suse": "shaderc",
                "macos": "brew install shaderc",
                "windows": "the Vulkan SDK from https://vulkan.lunarg.com",
            },
        ),
        Requirement(
            "spirv/unified1/spirv.hpp",
            "header",
            {
                "debian": "spirv-headers",
                "fedora": "spirv-headers-devel",
                "arch": "spirv-headers",
                "suse": "spirv-headers",
                "macos": "brew install spirv-headers",
                "windows": "the Vulkan SDK from https://vulkan.lunarg.com",
            },
        ),
    ],
    "sycl": [
        Requirement(
            "icpx",
            "tool",
            {family: "Intel oneAPI Base Toolkit (then: source /opt/intel/oneapi/setvars.sh)" for family in INSTALLERS},
        )
    ],
    "metal": [Requirement("xcrun", "tool", {"macos": "xcode-select --install"})],
    "opencl": [
        Requirement(
            "CL/cl.h",
            "header",
            {
                "debian": "opencl-headers ocl-icd-opencl-dev",
                "fedora": "opencl-headers ocl-icd-devel",
                "arch": "opencl-headers ocl-icd",
                "windows": "the Adreno OpenCL SDK from Qualcomm",
            },
        )
    ],
}


def os_family(system: str, os_release: str | None) -> str:
    """debian | fedora | arch | suse | macos | windows | linux (unknown distribution)."""
    if system == "Darwin":
        return "macos"
    if system == "Windows":
        return "windows"
    fields = dict(line.split("=", 1) for line in (os_release or "").splitlines() if "=" in line)
    ids = " ".join(fields.get(k, "").strip('"').lower() for k in ("ID", "ID_LIKE")).split()
    for family, names in {
        "debian": ("debian", "ubuntu"),
        "fedora": ("fedora", "rhel", "centos"),
        "arch": ("arch",),
        "suse": ("suse", "opensuse"),
    }.items():
        if any(i in names or i.startswith(names) for i in ids):
            return family
    return "linux"


def _expand(dirs: list[str]) -> list[Path]:
    out = []
    for d in dirs:
        expanded = os.path.expandvars(d)
        if "$" not in expanded:  # an unset variable: skip rather than search the file system root
            out.append(Path(expanded))
    return out


def find_tool(name: str) -> str | None:
    """The tool on PATH, else where its SDK installs it."""
    found = shutil.which(name)
    if found:
        return found
    for d in _expand(TOOL_DIRS.get(name, [])):
        if (d / name).is_file() and os.access(d / name, os.X_OK):
            return str(d / name)
    return None


def find_header(name: str) -> str | None:
    for d in _expand(INCLUDE_DIRS):
        if (d / name).is_file():
            return str(d / name)
    return None


@dataclass
class Check:
    backend: str
    family: str
    found: dict[str, str] = field(default_factory=dict)  # requirement -> where it is
    missing: list[Requirement] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    def install_hint(self) -> str:
        """What to install, in this OS's words: "sudo apt-get install glslc spirv-headers"."""
        family = self.family if self.family in INSTALLERS else "debian"
        names = list(dict.fromkeys(r.packages.get(family) or r.what for r in self.missing))
        if family in ("macos", "windows"):
            return "; ".join(names)
        return INSTALLERS[family].format(" ".join(names))


def check(backend: str, family: str) -> Check:
    """Look for every tool and header `backend` builds with (and a C++ compiler)."""
    result = Check(backend, family)
    needs = REQUIREMENTS.get(backend, [])
    if family != "windows":  # MSVC is not on PATH outside its developer prompt; CMake finds it
        needs = [COMPILER] + needs
    for req in needs:
        where = find_tool(req.what) if req.kind == "tool" else find_header(req.what)
        if where:
            result.found[req.what] = where
        else:
            result.missing.append(req)
    return result
