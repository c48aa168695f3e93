"""`r1local hw` end to end through the typer app: snapshots, --json, --save-snapshot, and live."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from r1local.cli import app
from r1local.cli.app import out

SNAPSHOTS = Path(__file__).parent / "snapshots"
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Wide enough that table cells are not wrapped across lines."""
    monkeypatch.setattr(out, "width", 400)


def hw(*args: str):
    result = runner.invoke(app, ["hw", *args])
    assert result.exit_code == 0, result.output
    return result.output


def hw_json(*args: str) -> dict:
    return json.loads(hw("--json", *args))


@pytest.mark.parametrize(
    "snapshot, must_say",
    [
        (
            "nvidia-rtx4060-laptop",
            [
                "NVIDIA GeForce RTX 4060 Laptop GPU",
                "used by this build",
                "7.7 GiB free of 8.0 GiB total",
                "Best for this PC: DeepSeek-R1-Distill-Llama-8B Q6_K",
                "layers on the RTX 4060 Laptop GPU",
                "about 83 GB/s usable by 6 threads (published: DDR5-5200, 128-bit)",
            ],
        ),
        ("dual-rtx3090-desktop", ["CUDA1", "all layers on the 2x RTX 3090", "DeepSeek-R1-Distill-Llama-70B"]),
        ("amd-radeon-desktop", ["gfx1100", "Vulkan0", "leaves integrated ones alone", "AMD Radeon RX 7900 XTX"]),
        (
            "ryzen-ai-laptop",
            ["XDNA (Phoenix / Hawk Point)", "no backend for AMD XDNA", "-DGGML_VULKAN=on", "on the CPU (8 threads"],
        ),
        (
            "intel-core-ultra-laptop",
            [
                "6 performance",
                "Meteor Lake NPU (NPU 3720)",
                "OpenVINO",
                "r1:npu = r1:1.5b-npu",
                "on the NPU: the CPU and GPU stay free",
            ],
        ),
        ("apple-m3-pro", ["Apple Neural Engine", "Metal", "all layers on the Apple M3 Pro GPU"]),
        ("snapdragon-x-elite-windows", ["Hexagon", "--upstream foundry=", "GGML_OPENCL", "NEON DOTPROD I8MM"]),
        (
            "container-2cpu-2gb",
            [
                "container limit 2.0 GiB",
                "2 physical, 2 logical",
                "DeepSeek-R1-Distill-Qwen-1.5B",
                "GPUs: none found",
                "available now",
            ],
        ),
        (
            "raspberry-pi5-8gb",
            [
                "Raspberry Pi 5 Model B Rev 1.0 (Broadcom BCM2712, 4x Cortex-A76) (arm64)",
                "17 GB/s usable by 4 threads (published: LPDDR4X-4267, 32-bit)",
                "the quickest that fits, as nothing here reaches 15 tokens/s",
                "r1:fast = r1:1.5b-q3_k_m",
                "the 7B class is too slow here",
            ],
        ),
        (
            "lunar-lake-lpddr5x-laptop",
            [
                "Intel Arc 140V (Lunar Lake)",
                "LPDDR5X-8533, 128-bit",
                "all layers on the Intel Arc 140V",
                "the best quality at 15 tokens/s or more with a reasoning-sized context",
            ],
        ),
        ("rtx4090-rtx3090-workstation", ["all layers on the RTX 4090 + RTX 3090", "DeepSeek-R1-Distill-Llama-70B"]),
        (
            "orange-pi5-8gb",
            [
                "Orange Pi 5 (Rockchip RK3588, 4x Cortex-A76 + 4x Cortex-A55)",
                "llama.cpp threads: 4",
                "34 GB/s usable by 4 threads (published: LPDDR4X-4224, 64-bit)",
            ],
        ),
    ],
)
def test_report_for_each_snapshot(snapshot, must_say):
    text = " ".join(hw("--snapshot", str(SNAPSHOTS / f"{snapshot}.json")).split())
    for phrase in must_say:
        assert phrase in text, phrase
    assert "(estimate)" in text and re.search(r"Why: r1 is .* s per 1,000 tokens of thinking\). r1:best = ", text)
    assert not re.search(r"\d GB(?!/s)", text)  # memory in GiB (bandwidth in GB/s), each figure labelled


def test_unknown_bandwidth_is_said_and_no_speed_is_invented(tmp_path):
    data = json.loads((SNAPSHOTS / "container-2cpu-2gb.json").read_text())
    data["files"]["/proc/cpuinfo"] = data["files"]["/proc/cpuinfo"].replace(
        "Intel(R) Xeon(R) Gold 6338", "Mystery MX-9"
    )
    (tmp_path / "mystery.json").write_text(json.dumps(data))
    text = " ".join(hw("--snapshot", str(tmp_path / "mystery.json")).split())
    assert (
        "unknown (not measured, and the CPU is not in the table)" in text
        and "unknown speed (memory bandwidth unknown)" in text
    )
    assert "the best quality that fits in memory" in text and "tokens/s (estimate)" not in text


def test_json_schema():
    report = hw_json("--snapshot", str(SNAPSHOTS / "nvidia-rtx4060-laptop.json"))
    assert report["schema_version"] == 1
    assert report["cpu"]["threads"] == 6 and report["memory"]["cgroup_limit"] is None
    gpu = report["gpus"][0]
    assert (gpu["vendor"], gpu["compute_capability"], gpu["source"]) == ("nvidia", "8.9", "nvml")
    assert [v["usable"] for v in report["verdicts"]] == [True, False]
    assert (report["cpu_bandwidth_gbs"], report["bandwidth_source"], report["memory_kind"]) == (
        83.2,
        "published",
        "DDR5-5200, 128-bit",
    )
    rec = report["recommendation"]
    assert rec["model"] == "r1:8b-q6_k" and rec["display_name"] == "DeepSeek-R1-Distill-Llama-8B Q6_K"
    plan = rec["plan"]
    assert plan["verdict"] == "partly on GPU" and plan["fits"] is True and plan["n_ctx"] == 16384
    assert plan["gpu_bytes"] <= plan["gpu_budget"] and rec["line"].startswith("Best for this PC:")
    assert 15 <= plan["decode_tps"] < plan["decode_ceiling_tps"]
    assert rec["seconds_per_1000_tokens"] == pytest.approx(1000 / plan["decode_tps"])
    assert rec["why"].startswith("Why: r1 is the best quality at 15 tokens/s")
    alt = rec["alternatives"]
    assert set(alt) == {"r1:best", "r1:fast"} and alt["r1:fast"]["decode_tps"] > plan["decode_tps"]


def test_save_then_replay_gives_the_same_report(tmp_path):
    saved = tmp_path / "this-pc.json"
    live = hw_json("--save-snapshot", str(saved))
    assert json.loads(saved.read_text())["format"] == 1
    assert hw_json("--snapshot", str(saved)) == live


def test_live_report_is_fast():
    hw()  # the first call pays for imports
    start = time.perf_counter()
    text = hw()
    assert time.perf_counter() - start < 2.0
    assert "Best for this PC:" in text or "Nothing in the catalog fits" in text


def test_missing_snapshot_is_one_clear_error(tmp_path):
    result = runner.invoke(app, ["hw", "--snapshot", str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "Snapshot file not found" in result.output
