"""Hardware detection, replayed from snapshots of hand-written machines and run live on this one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from r1local.errors import UsageError
from r1local.hardware import LiveProbe, RecordingProbe, ReplayProbe, bandwidth, detect
from r1local.hardware.gpus import parse_nvidia_csv
from r1local.hardware.llama_build import parse_system_info
from r1local.hardware.model import GiB
from r1local.hardware.verdicts import NOT_USABLE, USED

SNAPSHOTS = Path(__file__).parent / "snapshots"


def replay(name: str, **overrides):
    data = json.loads((SNAPSHOTS / f"{name}.json").read_text())
    for section, values in overrides.items():
        data[section] = {**data.get(section, {}), **values}
    return detect(ReplayProbe(data))


def verdict(hw, device: str):
    return next(v for v in hw.verdicts if v.device == device)


def test_rtx4060_laptop():
    hw = replay("nvidia-rtx4060-laptop")
    assert hw.cpu.model == "13th Gen Intel(R) Core(TM) i7-13700H"
    assert (hw.cpu.physical_cores, hw.cpu.logical_cores, hw.cpu.performance_cores) == (14, 20, 6)
    assert hw.cpu.threads == 6 and "AVX_VNNI" in hw.cpu.features and "AVX512" not in hw.cpu.features
    nv, igpu = hw.gpus
    assert (nv.name, nv.vendor, nv.integrated, nv.source) == (
        "NVIDIA GeForce RTX 4060 Laptop GPU",
        "nvidia",
        False,
        "nvml",
    )
    assert nv.vram_total == 8188 * 1024**2 and nv.vram_free == 7892 * 1024**2
    assert (nv.compute_capability, nv.driver, nv.bandwidth_gbs) == ("8.9", "550.54.14", 256)
    assert (igpu.name, igpu.vendor, igpu.integrated) == ("Intel Iris Xe Graphics", "intel", True)
    assert verdict(hw, nv.name).status == USED and "CUDA0" in verdict(hw, nv.name).why
    assert hw.usable_gpus == [nv]
    assert hw.build.backends["CUDA"]["ARCHS"] == "890" and hw.build.gpu_offload


def test_dual_rtx3090_desktop_reads_nvidia_smi():
    hw = replay("dual-rtx3090-desktop")
    assert [g.source for g in hw.gpus] == ["nvidia-smi", "nvidia-smi"]
    assert [g.vram_total for g in hw.gpus] == [24 * GiB, 24 * GiB]
    assert [v.why for v in hw.verdicts] == ["llama.cpp drives it as CUDA0", "llama.cpp drives it as CUDA1"]
    assert len(hw.usable_gpus) == 2
    assert (hw.cpu.physical_cores, hw.cpu.logical_cores) == (16, 32)
    assert {"AVX512", "AVX512_VNNI", "AVX512_BF16"} <= set(hw.cpu.features)
    assert hw.memory.total == 67_108_864 * 1024 - 2 * GiB  # from /proc/meminfo


def test_amd_desktop_discrete_radeon():
    hw = replay("amd-radeon-desktop")
    xtx, raphael = hw.gpus
    assert (xtx.name, xtx.integrated, xtx.compute_capability) == ("AMD Radeon RX 7900 XTX", False, "gfx1100")
    assert xtx.vram_total == 25_753_026_560 and xtx.vram_free == 25_753_026_560 - 1_288_490_188
    assert raphael.integrated and raphael.compute_capability == "gfx1036"
    assert verdict(hw, xtx.name).status == USED and "Vulkan0" in verdict(hw, xtx.name).why
    v = verdict(hw, raphael.name)
    assert v.status == NOT_USABLE and "discrete" in v.why and v.next_step is None


def test_ryzen_ai_laptop():
    hw = replay("ryzen-ai-laptop")
    (igpu,) = hw.gpus
    assert (igpu.name, igpu.integrated, igpu.compute_capability) == ("AMD Radeon 780M", True, "gfx1103")
    assert igpu.vram_total == 16_378_880_000  # the GTT share of system RAM, not the 512 MB carve-out
    (npu,) = hw.npus
    assert (npu.vendor, npu.driver, npu.generation) == ("amd", "amdxdna", "XDNA (Phoenix / Hawk Point)")
    gv, nv = verdict(hw, igpu.name), verdict(hw, npu.name)
    assert gv.status == NOT_USABLE and "no Vulkan backend" in gv.why
    # gfx1103 is not a ROCm target: the honest next step is Vulkan
    assert gv.next_step.startswith("r1local accelerate  (builds the Vulkan backend")
    assert 'by hand: CMAKE_ARGS="-DGGML_VULKAN=on -DGGML_RPC=on" pip install --force-reinstall' in gv.next_step
    assert nv.status == NOT_USABLE and "no backend for AMD XDNA" in nv.why
    assert hw.usable_gpus == [] and not hw.build.gpu_offload


def test_intel_core_ultra_laptop():
    hw = replay("intel-core-ultra-laptop")
    assert (hw.cpu.physical_cores, hw.cpu.logical_cores, hw.cpu.performance_cores) == (16, 22, 6)
    (igpu,) = hw.gpus
    assert (igpu.name, igpu.vendor, igpu.integrated, igpu.driver) == (
        "Intel Arc Graphics (Meteor Lake)",
        "intel",
        True,
        "i915",
    )
    (npu,) = hw.npus
    assert (npu.driver, npu.generation, npu.pci_id) == ("intel_vpu", "Meteor Lake NPU (NPU 3720)", "8086:7d1d")
    assert "OpenVINO" in verdict(hw, npu.name).why
    assert "GGML_VULKAN" in verdict(hw, igpu.name).next_step


def test_apple_m3_pro():
    hw = replay("apple-m3-pro")
    assert (hw.system, hw.cpu.arch, hw.cpu.model) == ("Darwin", "arm64", "Apple M3 Pro")
    assert (hw.cpu.physical_cores, hw.cpu.performance_cores, hw.cpu.threads) == (12, 6, 6)
    assert hw.cpu.features == ["NEON", "DOTPROD", "I8MM", "FP16"]
    (gpu,) = hw.gpus
    assert gpu.integrated and gpu.vram_total == 28_991_029_248  # Metal's working-set budget from the build
    assert verdict(hw, gpu.name).status == USED
    (ane,) = hw.npus
    assert ane.name == "Apple Neural Engine" and "does not use the Neural Engine" in verdict(hw, ane.name).why


def test_apple_budget_without_build_info():
    hw = replay("apple-m3-pro", calls={"llama_cpp.build": None})
    assert hw.gpus[0].vram_total == int(36 * GiB * 2 / 3)
    assert verdict(hw, hw.gpus[0].name).why == "llama-cpp-python is not installed"


def test_snapdragon_x_elite_windows():
    hw = replay("snapdragon-x-elite-windows")
    assert (hw.system, hw.cpu.arch, hw.cpu.physical_cores) == ("Windows", "arm64", 12)
    assert "X1E78100" in hw.cpu.model and hw.cpu.features == ["NEON", "DOTPROD", "I8MM"]
    (gpu,) = hw.gpus
    assert (gpu.vendor, gpu.integrated, gpu.source) == ("qualcomm", True, "cim")
    (npu,) = hw.npus
    assert (npu.vendor, npu.generation) == ("qualcomm", "Hexagon NPU")
    assert "Hexagon backend" in verdict(hw, npu.name).why
    assert "--upstream foundry=" in verdict(hw, npu.name).next_step  # Foundry Local, fronted
    assert '$env:CMAKE_ARGS="-DGGML_OPENCL=on -DGGML_RPC=on"; pip install' in verdict(hw, gpu.name).next_step


def test_container_limits():
    hw = replay("container-2cpu-2gb")
    assert (hw.cpu.logical_cores, hw.cpu.physical_cores, hw.cpu.threads) == (2, 2, 2)
    assert hw.memory.total > 60 * GiB  # the host's RAM...
    assert hw.memory.cgroup_limit == 2 * GiB and hw.memory.usable_total == 2 * GiB  # ...but 2 GB to use
    assert hw.memory.available == 2 * GiB - 52_428_800
    assert hw.gpus == [] and hw.npus == [] and hw.verdicts == []


def test_cgroup_v1_limit_in_nested_group():
    hw = replay(
        "container-2cpu-2gb",
        files={
            "/proc/self/cgroup": "4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n",
            "/sys/fs/cgroup/memory.max": None,
            "/sys/fs/cgroup/cpu.max": None,
            "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "4294967296\n",
            "/sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": "1073741824\n",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
        },
    )
    assert hw.memory.cgroup_limit == 4 * GiB and hw.memory.available == 3 * GiB
    assert hw.cpu.logical_cores == 16  # no CPU quota in this variant


def test_nvml_missing_falls_back_to_drm_listing():
    hw = replay("nvidia-rtx4060-laptop", calls={"nvml": None})
    names = [g.name for g in hw.gpus]
    assert "NVIDIA GPU (10de:28e0)" in names  # still reported, memory unknown, rather than hidden


def test_parse_system_info_sections():
    info = "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX2 = 1 | OPENMP = 1 |"
    assert parse_system_info(info) == {
        "CUDA": {"ARCHS": "890", "USE_GRAPHS": "1"},
        "CPU": {"SSE3": "1", "AVX2": "1", "OPENMP": "1"},
    }


def test_nvidia_csv_tolerates_missing_fields():
    (gpu,) = parse_nvidia_csv("0, Tesla K80, 11441, 11380, 470.82.01, [N/A], 00000000:00:04.0, 2505\n", "nvidia-smi")
    assert gpu.compute_capability is None and gpu.vram_total == 11441 * 1024**2
    assert gpu.bandwidth_gbs is None  # unknown card, and nvidia-smi has no bus width


def test_unknown_snapshot_format_is_refused(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"format": 99}')
    with pytest.raises(UsageError, match="format 99"):
        ReplayProbe.load(path)
    path.write_text("not json")
    with pytest.raises(UsageError, match="not a readable JSON snapshot"):
        ReplayProbe.load(path)


def test_live_record_and_replay_agree(tmp_path):
    recorder = RecordingProbe(LiveProbe())
    live = detect(recorder)
    recorder.save(tmp_path / "me.json")
    again = detect(ReplayProbe.load(tmp_path / "me.json"))
    assert again.to_dict() == live.to_dict()
    assert live.cpu.logical_cores >= 1 and live.memory.total > 0
    saved = json.loads((tmp_path / "me.json").read_text())
    assert saved["format"] == 1 and "/proc/cpuinfo" in saved["files"]
    # the bandwidth probe's answer travels with the snapshot, so a replay estimates the same speeds
    assert saved["calls"]["memory.bandwidth"]["gbs"] == live.cpu_bandwidth_gbs > 0
    assert live.bandwidth_source == again.bandwidth_source == "measured"


def test_nvidia_gpu_with_a_cpu_only_build_says_how_to_get_cuda():
    cpu_build = {"version": "0.3.36", "system_info": "CPU : AVX2 = 1 |", "gpu_offload": False, "devices": []}
    hw = replay("nvidia-rtx4060-laptop", calls={"llama_cpp.build": cpu_build})
    v = verdict(hw, "NVIDIA GeForce RTX 4060 Laptop GPU")
    assert v.status == NOT_USABLE and "no CUDA backend" in v.why
    assert v.next_step.startswith("r1local accelerate  (builds the CUDA backend, needs the CUDA toolkit (nvcc)")
    assert (
        'CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=89 -DGGML_RPC=on" pip install --force-reinstall '
        "--no-cache-dir llama-cpp-python"
    ) in v.next_step
    assert hw.usable_gpus == []


# CPU names as the OS prints them -> the peak RAM bandwidth (GB/s) of the memory they ship with
NAMED_CPUS = {
    "12th Gen Intel(R) Core(TM) i7-12700H": 76.8,
    "12th Gen Intel(R) Core(TM) i5-1235U": 83.2,
    "12th Gen Intel(R) Core(TM) i9-12900K": 76.8,
    "13th Gen Intel(R) Core(TM) i7-13700H": 83.2,
    "13th Gen Intel(R) Core(TM) i5-13600K": 89.6,
    "13th Gen Intel(R) Core(TM) i7-1355U": 83.2,
    "14th Gen Intel(R) Core(TM) i9-14900K": 89.6,
    "14th Gen Intel(R) Core(TM) i9-14900HX": 83.2,
    "Intel(R) Core(TM) 7 150U": 83.2,
    "Intel(R) Core(TM) Ultra 7 155H": 119.5,
    "Intel(R) Core(TM) Ultra 5 125U": 119.5,
    "Intel(R) Core(TM) Ultra 7 258V": 136.5,
    "Intel(R) Core(TM) Ultra 9 285H": 134.4,
    "Intel(R) Core(TM) Ultra 9 285K": 102.4,
    "Intel(R) Core(TM) Ultra 9 275HX": 102.4,
    "Intel(R) N100": 38.4,
    "AMD Ryzen 7 5800X3D 8-Core Processor": 51.2,
    "AMD Ryzen 9 5900HX with Radeon Graphics": 51.2,
    "AMD Ryzen 7 5700U with Radeon Graphics": 68.3,
    "AMD Ryzen 7 6800H with Radeon Graphics": 76.8,
    "AMD Ryzen 9 7950X 16-Core Processor": 96.0,
    "AMD Ryzen 7 7840U w/ Radeon 780M Graphics": 89.6,
    "AMD Ryzen 7 8845HS w/ Radeon 780M Graphics": 89.6,
    "AMD Ryzen 7 8700G w/ Radeon 780M Graphics": 96.0,
    "AMD Ryzen 9 9950X 16-Core Processor": 96.0,
    "AMD Ryzen 7 9800X3D 8-Core Processor": 96.0,
    "AMD Ryzen AI 9 HX 370 w/ Radeon 890M": 120.0,
    "AMD Ryzen AI 7 350 w/ Radeon 860M": 89.6,
    "AMD Ryzen AI Max+ 395 w/ Radeon 8060S": 128.0,
    "Apple M1": 68.3,
    "Apple M1 Pro": 204.8,
    "Apple M1 Max": 409.6,
    "Apple M1 Ultra": 819.2,
    "Apple M2": 102.4,
    "Apple M2 Pro": 204.8,
    "Apple M2 Max": 409.6,
    "Apple M2 Ultra": 819.2,
    "Apple M3": 102.4,
    "Apple M3 Pro": 153.6,
    "Apple M3 Max": 409.6,
    "Apple M3 Ultra": 819.2,
    "Apple M4": 120.0,
    "Apple M4 Pro": 273.1,
    "Apple M4 Max": 546.1,
    "Snapdragon(R) X Elite - X1E78100 - Qualcomm(R) Oryon(TM) CPU": 135.2,
    "Snapdragon(R) X Plus - X1P64100 - Qualcomm(R) Oryon(TM) CPU": 135.2,
    "Raspberry Pi 5 Model B Rev 1.0 (Broadcom BCM2712, 4x Cortex-A76)": 17.1,
    "Raspberry Pi 4 Model B Rev 1.4 (4x Cortex-A72)": 12.8,
    "Orange Pi 5 (Rockchip RK3588, 4x Cortex-A76 + 4x Cortex-A55)": 33.8,
}


@pytest.mark.parametrize("name, gbs", NAMED_CPUS.items())
def test_cpus_people_own_have_their_memory_bandwidth(name, gbs):
    platform = bandwidth.published(name)
    assert platform is not None and platform.gbs == gbs, platform


def test_names_are_normalised_before_matching():
    assert bandwidth.normalise("13th Gen Intel(R) Core(TM) i7-13700H CPU @ 2.40GHz") == "intel core i7-13700h"
    assert bandwidth.normalise("AMD Ryzen 9 7940HS w/ Radeon 780M Graphics") == "amd ryzen 9 7940hs"
    assert bandwidth.normalise("AMD Ryzen 7 7800X3D 8-Core Processor") == "amd ryzen 7 7800x3d"


def test_an_unknown_cpu_has_no_invented_bandwidth():
    assert bandwidth.published("Mystery Systems MX-9") is None
    hw = replay("container-2cpu-2gb", files={"/proc/cpuinfo": "processor\t: 0\nmodel name\t: Mystery Systems MX-9\n"})
    assert (hw.cpu_bandwidth_gbs, hw.bandwidth_source, hw.memory_kind) == (None, None, None)


def test_arm_cores_fall_back_to_their_usual_boards():
    assert bandwidth.published("some board", ["Cortex-A55"]).memory == "LPDDR4-3200, 32-bit"


def test_raspberry_pi_5_is_named_by_board_soc_and_cores():
    hw = replay("raspberry-pi5-8gb")
    assert hw.cpu.model == "Raspberry Pi 5 Model B Rev 1.0 (Broadcom BCM2712, 4x Cortex-A76)"
    assert (hw.cpu.arch, hw.cpu.physical_cores, hw.cpu.threads, hw.cpu.core_types) == ("arm64", 4, 4, ["Cortex-A76"])
    assert hw.cpu.features == ["NEON", "DOTPROD", "FP16"]
    assert (hw.cpu_bandwidth_gbs, hw.bandwidth_source, hw.memory_kind) == (17.1, "published", "LPDDR4X-4267, 32-bit")


def test_big_little_board_from_the_device_tree_alone():
    procs = [
        f"processor\t: {i}\nFeatures\t: fp asimd asimddp\nCPU implementer\t: 0x41\nCPU part\t: {part}\n"
        for i, part in enumerate(["0xd05"] * 4 + ["0xd0b"] * 4)
    ]
    hw = replay(
        "raspberry-pi5-8gb",
        files={
            "/proc/cpuinfo": "\n".join(procs),
            "/proc/device-tree/model": "Orange Pi 5\x00",
            "/proc/device-tree/compatible": "rockchip,rk3588s-orangepi-5\x00rockchip,rk3588\x00",
        },
    )
    assert hw.cpu.model == "Orange Pi 5 (Rockchip RK3588, 4x Cortex-A76 + 4x Cortex-A55)"
    assert hw.cpu.performance_cores == 4 and hw.cpu.core_types == ["Cortex-A76", "Cortex-A55"]
    assert hw.cpu_bandwidth_gbs == 33.8  # LPDDR4X-4224 on a 64-bit bus


def test_linux_on_apple_silicon_names_the_chip_by_its_cores():
    procs = [
        f"processor\t: {i}\nFeatures\t: fp asimd asimddp i8mm\nCPU implementer\t: 0x61\nCPU part\t: {part}\n"
        for i, part in enumerate(["0x22"] * 4 + ["0x23"] * 4)
    ]
    hw = replay(
        "raspberry-pi5-8gb",
        files={
            "/proc/cpuinfo": "\n".join(procs),
            "/proc/device-tree/model": "Apple MacBook Air (M1, 2020)\x00",
            "/proc/device-tree/compatible": "apple,j313\x00apple,t8103\x00apple,arm-platform\x00",
        },
    )
    assert hw.cpu.model == "Apple MacBook Air (M1, 2020) (Apple T8103, 4x Apple M1 Firestorm + 4x Apple M1 Icestorm)"
    assert hw.cpu.performance_cores == 4 and hw.cpu_bandwidth_gbs == 68.3


def test_unknown_arm_part_is_named_by_its_numbers():
    hw = replay(
        "raspberry-pi5-8gb",
        files={
            "/proc/cpuinfo": "processor\t: 0\nCPU implementer\t: 0x6d\nCPU part\t: 0x123\n",
            "/proc/device-tree/model": None,
            "/proc/device-tree/compatible": None,
        },
    )
    assert hw.cpu.model == "1x ARM core 0x123 (implementer 0x6d)" and hw.cpu_bandwidth_gbs is None


def test_bandwidth_probe_is_short_and_cached_per_machine(tmp_path):
    start = time.perf_counter()
    gbs = bandwidth.measure(2, budget=64 * bandwidth.MiB, seconds=0.05)
    assert gbs > 0.5 and time.perf_counter() - start < 5  # a loaded 2-core box; the default is 256 MiB, 0.1 s
    cache = tmp_path / "bandwidth.json"
    first = bandwidth.cached_measure(cache, "this machine", 1)
    assert first["gbs"] > 0 and first["threads"] == 1
    assert bandwidth.cached_measure(cache, "this machine", 1) == first  # no second probe
    cache.write_text("{broken")
    assert bandwidth.cached_measure(cache, "this machine", 1)["gbs"] > 0  # a damaged cache is measured again


def test_a_recorded_measurement_replays():
    hw = replay("raspberry-pi5-8gb", calls={"memory.bandwidth": {"gbs": 9.5, "threads": 4, "measured_at": 0}})
    assert (hw.cpu_bandwidth_gbs, hw.bandwidth_source, hw.memory_kind) == (9.5, "measured", "LPDDR4X-4267, 32-bit")


LAVAPIPE = {
    "name": "Vulkan0",
    "description": "llvmpipe (LLVM 15.0.6, 256 bits)",
    "type": "gpu",
    "memory_free": 2 * GiB,
    "memory_total": 2 * GiB,
}


def vulkan_build(*devices: dict) -> dict:
    return {
        "version": "0.3.36",
        "system_info": "CPU : AVX2 = 1 |",
        "gpu_offload": True,
        "devices": [*devices, {"name": "CPU", "description": "cpu", "type": "cpu"}],
        "registries": ["CPU", "Vulkan", "RPC"],
    }


def test_a_gpu_only_the_build_sees_is_listed_and_used():
    hw = replay("container-2cpu-2gb", calls={"llama_cpp.build": vulkan_build(LAVAPIPE)})
    (gpu,) = hw.gpus
    assert (gpu.name, gpu.vendor, gpu.source, gpu.vram_total) == (
        LAVAPIPE["description"],
        "unknown",
        "ggml Vulkan0",
        2 * GiB,
    )
    (v,) = hw.verdicts
    assert v.usable and v.ggml_device == "Vulkan0" and "drives it as Vulkan0" in v.why
    assert hw.usable_gpus == [gpu] and hw.offload_devices() == ["Vulkan0"]
    assert hw.build.cpu_fallback_note() is None


def test_a_gpu_found_by_detection_is_not_listed_twice():
    hw = replay("nvidia-rtx4060-laptop")
    assert [g.source for g in hw.gpus].count("nvml") == 1 and not any(g.source.startswith("ggml") for g in hw.gpus)
    assert hw.offload_devices() == ["CUDA0"]


def test_a_gpu_build_without_a_device_says_it_runs_on_the_cpu():
    hw = replay("container-2cpu-2gb", calls={"llama_cpp.build": vulkan_build()})
    assert hw.gpus == [] and hw.build.idle_gpu_backends() == ["Vulkan"]
    assert hw.build.cpu_fallback_note().startswith("this llama.cpp build has Vulkan but found no Vulkan device")
