"""A draft model in the fit: `hw` names the catalog's draft for a Qwen distill with the memory it
adds (weights + its KV cache at the planned context) and whether the pair fits, or says why a
Llama distill has none; the draft follows the target onto the GPU where the pair fits there, and
its cache takes the target's KV type, in the plan and in llama.cpp's own buffers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_fit import machine, shape
from typer.testing import CliRunner

from r1local.cli import app
from r1local.engine.model import Model
from r1local.engine.params import SamplingParams
from r1local.engine.speculative import Speculation
from r1local.fit import plan
from r1local.fit_draft import plan_draft

SNAPSHOTS = Path(__file__).parent / "snapshots"
runner = CliRunner()


def hw(snapshot: str, *args: str):
    result = runner.invoke(app, ["hw", "--snapshot", str(SNAPSHOTS / f"{snapshot}.json"), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_hw_names_the_draft_of_a_qwen_distill_with_its_memory_and_the_pairs_fit():
    # the 14B on an M3 Pro: the draft goes on the GPU beside it
    text = " ".join(hw("apple-m3-pro").split())
    assert "DeepSeek-R1-Distill-Qwen-14B" in text
    assert "Draft model: DeepSeek-R1-Distill-Qwen-1.5B Q4_K_M can draft for it (--draft auto), on the GPU" in text
    assert "at the 16384-token context, f16); the pair fits" in text
    draft = json.loads(hw("apple-m3-pro", "--json"))["recommendation"]["draft"]
    d = shape("1.5b-q4_k_m")
    assert draft["model"] == "r1:1.5b-q4_k_m" and draft["option"] == "--draft auto" and draft["pair_fits"]
    assert (draft["device"], draft["n_gpu_layers"], draft["n_ctx"]) == ("GPU", d.layers + 1, 16384)
    assert draft["kv_bytes"] == pytest.approx(d.kv_bytes_per_token("f16") * 16384, rel=0.02)
    assert draft["weights_bytes"] >= d.file_bytes - d.embed_bytes
    assert draft["total_bytes"] > draft["weights_bytes"] + draft["kv_bytes"]
    # the 32B fills the Radeon with a q8_0 cache: the draft runs on the CPU, its cache q8_0 too
    draft = json.loads(hw("amd-radeon-desktop", "--json"))["recommendation"]["draft"]
    assert (draft["device"], draft["n_gpu_layers"], draft["kv_type"]) == ("CPU", 0, "q8_0")
    assert draft["kv_bytes"] == pytest.approx(d.kv_bytes_per_token("q8_0") * 16384, rel=0.02)
    assert "on the CPU: " in " ".join(hw("amd-radeon-desktop").split())


def test_hw_says_why_a_llama_distill_or_the_smallest_has_no_draft():
    text = " ".join(hw("nvidia-rtx4060-laptop").split())
    assert "Llama-8B" in text and "Draft model: none in the catalog: The Llama distills need a draft" in text
    draft = json.loads(hw("nvidia-rtx4060-laptop", "--json"))["recommendation"]["draft"]
    assert draft["model"] is None and "Llama 3's vocabulary" in draft["why"] and "--spec ngram" in draft["instead"]
    draft = json.loads(hw("raspberry-pi5-8gb", "--json"))["recommendation"]["draft"]
    assert draft["model"] is None and "smallest distill" in draft["why"]


def test_the_draft_follows_the_target_onto_the_gpu_only_where_the_pair_fits_there():
    target_shape, draft_shape, m = shape("14b-q3_k_m"), shape("1.5b-q4_k_m"), machine("apple-m3-pro")
    target = plan(target_shape, m, 16384)
    assert target.all_on_gpu
    roomy = plan_draft(draft_shape, m, target)
    assert roomy.plan.n_gpu_layers == draft_shape.layers + 1 and roomy.pair_fits
    assert target.gpu_bytes + roomy.plan.gpu_bytes <= target.gpu_budget
    # what the target leaves of the GPU's budget is less than the draft needs: the draft goes to the CPU
    tight_target = dataclasses.replace(target, gpu_budget=target.gpu_bytes + roomy.plan.gpu_bytes // 2)
    tight = plan_draft(draft_shape, m, tight_target)
    assert tight.plan.n_gpu_layers == 0 and tight.pair_fits and tight.plan.gpu_bytes == 0
    assert tight.plan.cpu_bytes > roomy.plan.cpu_bytes  # its layers and cache now in RAM
    # a target partly on the GPU keeps the draft on the CPU
    partly = dataclasses.replace(target, verdict="partly on GPU", n_gpu_layers=target_shape.layers - 4)
    assert plan_draft(draft_shape, m, partly).plan.n_gpu_layers == 0
    # RAM short of the pair: the pair does not fit
    m.memory.available = int((target.cpu_bytes + tight.plan.cpu_bytes // 2) / 0.9)
    assert not plan_draft(draft_shape, m, tight_target).pair_fits
    # the draft's cache takes the target's type
    quantised = plan(target_shape, machine("apple-m3-pro"), 16384, kv_type="q4_0")
    assert plan_draft(draft_shape, machine("apple-m3-pro"), quantised).plan.kv_type == "q4_0"


def _kv(placement) -> int:
    return sum(kinds.get("KV", 0) for kinds in placement.buffers.values())


def test_a_loaded_draft_takes_the_targets_kv_type_and_the_planned_gpu_layers(tiny_model_long):
    """Real loads on this CPU: the draft's llama.cpp KV buffer shrinks with the target's --kv-type,
    and the GPU layers a plan gives the draft are what llama.cpp is asked for."""
    drafts = Speculation("draft", draft=str(tiny_model_long))
    sizes = {}
    for kv_type in ("f16", "q8_0"):
        with Model.load(tiny_model_long, n_ctx=1024, n_threads=1, kv_type=kv_type, speculation=drafts) as model:
            assert model.draft.native.kv_type == kv_type and model.draft.native.n_gpu_layers == 0
            sizes[kv_type] = _kv(model.draft.native.placement)
            assert sizes[kv_type] == _kv(model.placement)  # the same shape, context and type as its target
            result = model.complete("The quick brown fox", params=SamplingParams(temperature=0, max_tokens=8)).result()
            assert result.done.usage.completion_tokens == 8
    assert sizes["q8_0"] / sizes["f16"] == pytest.approx(34 / 64, rel=0.02)
    from r1local.fit import plan_for_file

    placed = dataclasses.replace(plan_for_file(tiny_model_long, 1024, kv_type="f16"), draft_gpu_layers=3)
    with Model.load(tiny_model_long, n_threads=1, plan=placed, speculation=drafts) as model:
        assert model.draft.native.n_gpu_layers == 3  # asked of llama.cpp (a CPU build keeps them on the CPU)
