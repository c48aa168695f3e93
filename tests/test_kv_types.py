"""KV cache types: the fit with each type, the default's choice, and real loads whose llama.cpp KV
buffers shrink as planned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_fit import machine, shape
from typer.testing import CliRunner

from r1local import config
from r1local.cli import app
from r1local.engine.model import Model
from r1local.engine.params import SamplingParams
from r1local.errors import UsageError
from r1local.fit import KV_BYTES, ModelShape, plan
from r1local.gguf_meta import read_gguf

runner = CliRunner()


@pytest.mark.parametrize("kv_type", ["f16", "q8_0", "q4_0"])
def test_the_fit_counts_the_cache_at_the_chosen_type(kv_type):
    s, hw = shape("7b-q4_k_m"), machine("apple-m3-pro")
    p = plan(s, hw, 16384, kv_type=kv_type)
    kv = p.details["cpu_kv"] + p.details["gpu_kv"]
    assert p.kv_type == kv_type and p.n_ctx == 16384
    assert kv == pytest.approx(s.kv_bytes_per_token(kv_type) * 16384, rel=0.02)
    assert p.flash_attn == ("auto" if kv_type == "f16" else "on")  # llama.cpp reads a quantised V only in it


def test_a_smaller_cache_type_lets_a_longer_context_fit():
    """A machine whose RAM holds the 7B with an 8k f16 cache but not 16k: q8_0 reaches 16k, and the
    context each type reaches never shrinks as the type gets smaller."""
    s, hw = shape("7b-q4_k_m"), machine("container-2cpu-2gb")
    contexts = {}
    for kv_type in ("f16", "q8_0", "q4_0"):
        ram = s.file_bytes + s.runtime_bytes() + s.touched_compute_bytes() + int(s.kv_bytes_per_token("q8_0") * 16500)
        hw.memory.available = int(ram / 0.9)
        contexts[kv_type] = plan(s, hw, 16384, kv_type=kv_type).n_ctx
    assert contexts["f16"] < contexts["q8_0"] == contexts["q4_0"] == 16384


def test_the_default_uses_q8_0_only_where_it_is_what_lets_the_context_fit():
    s, hw = shape("7b-q4_k_m"), machine("container-2cpu-2gb")
    hw.memory.available = int(
        (s.file_bytes + s.runtime_bytes() + s.touched_compute_bytes() + s.kv_bytes_per_token("q8_0") * 16500) / 0.9
    )
    tight = plan(s, hw, 16384)
    assert (tight.kv_type, tight.n_ctx) == ("q8_0", 16384)
    assert "q8_0 KV cache" in tight.kv_note and "f16: 8192" in tight.kv_note
    hw.memory.available *= 4
    roomy = plan(s, hw, 16384)
    assert (roomy.kv_type, roomy.n_ctx, roomy.kv_note) == ("f16", 16384, "")


def test_heads_that_do_not_split_into_blocks_keep_f16(tiny_model):
    s = ModelShape.from_gguf(read_gguf(tiny_model))
    assert s.key_dim % 32  # the tiny model's heads of 16
    hw = machine("container-2cpu-2gb")
    hw.memory.available = 64 * 2**20
    assert plan(s, hw, 1 << 20).kv_type == "f16"
    with pytest.raises(UsageError, match="multiple of 32"):
        plan(s, hw, 512, kv_type="q8_0")


def _kv_bytes(model: Model) -> int:
    return sum(kinds.get("KV", 0) for kinds in model.placement.buffers.values())


def test_a_q8_0_cache_is_half_of_f16_in_llama_cpps_own_buffers(tiny_model_long):
    """Read back from llama.cpp's `KV buffer size` log lines: q8_0 holds 34 bytes per 32 elements."""
    sizes, texts = {}, {}
    for kv_type in ("f16", "q8_0", "q4_0"):
        with Model.load(tiny_model_long, n_ctx=4096, n_threads=1, kv_type=kv_type) as model:
            assert model.native.kv_type == kv_type
            sizes[kv_type] = _kv_bytes(model)
            stream = model.complete("The quick brown fox", params=SamplingParams(temperature=0, max_tokens=8))
            texts[kv_type] = stream.result()
    assert sizes["f16"] > 0
    assert sizes["q8_0"] / sizes["f16"] == pytest.approx(KV_BYTES["q8_0"] / KV_BYTES["f16"], rel=0.02)
    assert sizes["q4_0"] / sizes["f16"] == pytest.approx(KV_BYTES["q4_0"] / KV_BYTES["f16"], rel=0.02)
    assert all(r.done.usage.completion_tokens == 8 for r in texts.values())


def test_config_file_sets_the_kv_type_and_a_bad_one_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("R1LOCAL_HOME", str(tmp_path))
    monkeypatch.delenv("R1LOCAL_KV_TYPE", raising=False)
    assert config.kv_type() is None
    (tmp_path / "config.toml").write_text('kv_type = "q8_0"\n')
    assert config.kv_type() == "q8_0"
    (tmp_path / "config.toml").write_text('kv_type = "q5"\n')
    with pytest.raises(UsageError, match="kv_type must be one of f16, q8_0, q4_0"):
        config.kv_type()


def test_run_takes_kv_type_and_refuses_a_misfit_in_one_line(tiny_model, tiny_model_long):
    fast = ["--max-tokens", "4", "--ctx", "512", "--temperature", "0", "--threads", "1", "--json"]
    result = runner.invoke(app, ["run", str(tiny_model_long), "hi", "--kv-type", "q8_0", *fast])
    assert result.exit_code in (0, 20), result.output
    assert json.loads(result.stdout)["usage"]["completion_tokens"] <= 4
    result = runner.invoke(app, ["run", str(tiny_model), "hi", "--kv-type", "q8_0", *fast])
    assert result.exit_code == 2 and "multiple of 32" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["run", str(tiny_model), "hi", "--kv-type", "q5_1", *fast])
    assert result.exit_code == 2 and "q5_1" in result.output


def test_hw_says_when_q8_0_is_what_lets_the_reasoning_context_fit():
    snapshots = Path(__file__).parent / "snapshots"
    tight = runner.invoke(app, ["hw", "--snapshot", str(snapshots / "amd-radeon-desktop.json")])
    text = " ".join(tight.stdout.split())
    assert tight.exit_code == 0 and "16k context (q8_0 KV cache)" in text
    assert "KV cache: a q8_0 KV cache (half of f16's bytes) lets the 16384-token context fit (f16: 8192)" in text
    report = json.loads(
        runner.invoke(app, ["hw", "--json", "--snapshot", str(snapshots / "amd-radeon-desktop.json")]).stdout
    )
    assert report["recommendation"]["plan"]["kv_type"] == "q8_0"
    roomy = runner.invoke(app, ["hw", "--snapshot", str(snapshots / "nvidia-rtx4060-laptop.json")])
    assert roomy.exit_code == 0 and "KV cache" not in roomy.stdout
