"""`r1local hw` end to end through the typer app: snapshots, --json, --save-snapshot, and live."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize("snapshot, must_say", [
    ("nvidia-rtx4060-laptop", ["NVIDIA GeForce RTX 4060 Laptop GPU", "used by this build",
                               "Best for this PC: DeepSeek-R1-Distill-Qwen-7B", "all layers on the RTX 4060 Laptop GPU"]),
    ("dual-rtx3090-desktop", ["CUDA1", "all layers on the 2x RTX 3090", "DeepSeek-R1-Distill-Llama-70B"]),
    ("amd-radeon-desktop", ["gfx1100", "Vulkan0", "leaves integrated ones alone", "AMD Radeon RX 7900 XTX"]),
    ("ryzen-ai-laptop", ["XDNA (Phoenix / Hawk Point)", "no backend for AMD XDNA", "-DGGML_VULKAN=on", "on the CPU (8 threads"]),
    ("intel-core-ultra-laptop", ["6 performance", "Meteor Lake NPU (NPU 3720)", "OpenVINO", "on the CPU (6 threads"]),
    ("apple-m3-pro", ["Apple Neural Engine", "Metal", "all layers on the Apple M3 Pro GPU"]),
    ("snapdragon-x-elite-windows", ["Hexagon", "GGML_HEXAGON", "GGML_OPENCL", "NEON DOTPROD I8MM"]),
    ("container-2cpu-2gb", ["container limit 2.0 GB", "2 physical, 2 logical", "DeepSeek-R1-Distill-Qwen-1.5B",
                            "GPUs: none found"]),
])
def test_report_for_each_snapshot(snapshot, must_say):
    text = " ".join(hw("--snapshot", str(SNAPSHOTS / f"{snapshot}.json")).split())
    for phrase in must_say:
        assert phrase in text, phrase
    assert "(estimate)" in text


def test_json_schema():
    report = hw_json("--snapshot", str(SNAPSHOTS / "nvidia-rtx4060-laptop.json"))
    assert report["schema_version"] == 1
    assert report["cpu"]["threads"] == 6 and report["memory"]["cgroup_limit"] is None
    gpu = report["gpus"][0]
    assert (gpu["vendor"], gpu["compute_capability"], gpu["source"]) == ("nvidia", "8.9", "nvml")
    assert [v["usable"] for v in report["verdicts"]] == [True, False]
    rec = report["recommendation"]
    assert rec["model"].startswith("r1:7b-") and rec["display_name"].startswith("DeepSeek-R1-Distill-Qwen-7B ")
    plan = rec["plan"]
    assert plan["verdict"] == "fits on GPU" and plan["n_gpu_layers"] == 29 and plan["fits"] is True
    assert plan["gpu_bytes"] <= plan["gpu_budget"] and rec["line"].startswith("Best for this PC:")


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
