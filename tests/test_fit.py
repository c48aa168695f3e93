"""Memory fit, load choices and speed estimates, on the snapshot machines and a real tiny GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1local import catalog, fit
from r1local.fit import KV_BYTES, ModelShape, best_model, plan, plan_for_file
from r1local.gguf_meta import read_gguf
from r1local.hardware import ReplayProbe, detect, detect_live
from r1local.hardware.model import GiB

SNAPSHOTS = Path(__file__).parent / "snapshots"


def machine(name: str):
    return detect(ReplayProbe.load(SNAPSHOTS / f"{name}.json"))


def shape(name: str) -> ModelShape:
    distill, quant = name.split("-")
    return catalog.load().variant(distill, quant).shape


CANDIDATES = [(v.name, v.shape) for v in catalog.load().variants()]


def test_kv_cache_formula():
    s = shape("7b-q4_k_m")  # 28 layers x 4 kv heads x (128 + 128)
    assert s.kv_bytes_per_token("f16") == 28 * 4 * 256 * 2
    assert s.kv_bytes_per_token("q8_0") == 28 * 4 * 256 * 34 / 32
    assert s.kv_bytes_per_token("q4_0") == 28 * 4 * 256 * KV_BYTES["q4_0"]


def test_shape_from_catalog_accounts_for_the_whole_file():
    s = shape("14b-q4_k_m")
    assert s.layers == 48 and s.kv_heads == 8 and s.trained_ctx == 131072
    assert abs(s.layers * s.layer_bytes + s.embed_bytes + s.output_bytes - s.file_bytes) < s.layers


def test_shape_from_gguf(tiny_model):
    info = read_gguf(tiny_model)
    s = ModelShape.from_gguf(info)
    layers, other = info.bytes_per_layer()
    assert s.layers == info.block_count == len(layers)
    assert (s.kv_heads, s.key_dim, s.value_dim) == (info.head_count_kv, info.key_length, info.value_length)
    assert s.layer_bytes == max(layers.values()) and s.params == info.parameter_count
    assert s.embed_bytes + s.output_bytes >= other  # output head is counted even when tied to the embeddings


def test_full_offload_on_rtx4060():
    p = plan(shape("7b-q4_k_m"), machine("nvidia-rtx4060-laptop"), 16384)
    assert p.fits and p.verdict == "fits on GPU" and p.n_gpu_layers == 29 and p.n_ctx == 16384
    assert p.device == "RTX 4060 Laptop GPU" and p.n_threads == 6
    assert p.gpu_bytes < p.gpu_budget < 8 * GiB
    # 4.7 GB read per token at ~256 GB/s: tens of tokens/s, not hundreds, not single digits
    assert 25 < p.decode_tps < 60 and p.prompt_tps > 10 * p.decode_tps


def test_partial_offload_when_the_model_is_bigger_than_vram():
    hw = machine("nvidia-rtx4060-laptop")
    p = plan(shape("14b-q4_k_m"), hw, 16384)
    assert p.verdict == "partly on GPU" and 10 < p.n_gpu_layers < 48
    assert p.gpu_bytes <= p.gpu_budget
    full_gpu_7b = plan(shape("7b-q4_k_m"), hw, 16384)
    cpu_only = plan(shape("14b-q4_k_m"), machine("intel-core-ultra-laptop"), 16384)
    assert cpu_only.decode_tps < p.decode_tps < full_gpu_7b.decode_tps


def test_context_shrinks_before_offload_does():
    p = plan(shape("7b-q4_k_m"), machine("nvidia-rtx4060-laptop"), 131072)
    assert p.verdict == "fits on GPU" and 8192 <= p.n_ctx < 131072


def test_parallel_slots_multiply_the_cache():
    hw, s = machine("intel-core-ultra-laptop"), shape("7b-q4_k_m")
    one, four = plan(s, hw, 8192, 1), plan(s, hw, 8192, 4)
    assert four.n_ctx_total == 4 * 8192
    assert four.details["cpu_kv"] == pytest.approx(4 * one.details["cpu_kv"], rel=0.01)


def test_too_big_says_why():
    p = plan(shape("70b-q4_k_m"), machine("container-2cpu-2gb"), 8192)
    assert not p.fits and p.verdict == "too big" and "GB" in p.reason


def test_repacked_weights_are_read_into_ram_not_mapped():
    laptop = machine("intel-core-ultra-laptop")  # AVX2: 4-bit layer weights get repacked
    on_cpu = plan(shape("7b-q4_k_m"), laptop, 8192)
    assert on_cpu.verdict == "fits in RAM" and on_cpu.details["cpu_repack"] > 0 and not on_cpu.map_file
    assert plan(shape("7b-q8_0"), laptop, 8192).map_file  # nothing repacked: mapping costs nothing extra
    assert plan(shape("7b-q4_k_m"), machine("nvidia-rtx4060-laptop"), 16384).map_file  # every layer on the GPU
    assert plan(shape("70b-q4_k_m"), machine("container-2cpu-2gb"), 8192).map_file  # too big: let the kernel page


def test_the_tiled_matmul_is_off_only_where_decode_steps_sit_in_its_losing_rows():
    avx2 = machine("intel-core-ultra-laptop")  # AVX2 without AVX-512 VNNI: the tiled AVX2 kernel
    assert not plan(shape("1.5b-q4_k_m"), avx2, 4096, n_parallel=8).tiled_matmul
    assert not plan(shape("1.5b-q4_k_m"), avx2, 4096, n_parallel=15).tiled_matmul
    assert plan(shape("1.5b-q4_k_m"), avx2, 4096, n_parallel=4).tiled_matmul  # decode never reaches 8 rows
    assert plan(shape("1.5b-q4_k_m"), avx2, 2048, n_parallel=16).tiled_matmul  # it pays from 16 rows
    assert plan(shape("1.5b-q4_k_m"), machine("ryzen-ai-laptop"), 4096, n_parallel=8).tiled_matmul  # AVX-512 VNNI
    on_gpu = plan(shape("1.5b-q4_k_m"), machine("nvidia-rtx4060-laptop"), 4096, n_parallel=8)
    assert on_gpu.all_on_gpu and on_gpu.tiled_matmul


def test_container_gets_a_small_model_within_its_limit():
    hw = machine("container-2cpu-2gb")
    choice = best_model(hw, CANDIDATES)
    assert choice.name.startswith("r1:1.5b") and choice.plan.verdict == "fits in RAM"
    assert choice.plan.cpu_bytes <= hw.memory.available and choice.plan.n_threads == 2


@pytest.mark.parametrize("snapshot, distill, verdict", [
    ("nvidia-rtx4060-laptop", "7b", "fits on GPU"),
    ("dual-rtx3090-desktop", "70b", "fits on GPU"),
    ("amd-radeon-desktop", "32b", "fits on GPU"),
    ("apple-m3-pro", "14b", "fits on GPU"),
    ("ryzen-ai-laptop", "14b", "fits in RAM"),
    ("intel-core-ultra-laptop", "8b", "fits in RAM"),
    ("snapdragon-x-elite-windows", "14b", "fits in RAM"),
])
def test_best_model_per_machine(snapshot, distill, verdict):
    choice = best_model(machine(snapshot), CANDIDATES)
    assert choice.name.startswith(f"r1:{distill}-"), choice.name
    assert choice.plan.verdict == verdict and choice.plan.n_ctx >= 8192
    assert choice.plan.decode_tps >= fit.MIN_TOKENS_PER_S


def test_two_gpus_pool_their_memory():
    hw = machine("dual-rtx3090-desktop")
    p = plan(shape("70b-q4_k_m"), hw, 8192)
    assert p.device == "2x RTX 3090" and p.verdict == "fits on GPU" and p.gpu_bytes > 24 * GiB


def test_plan_for_file_uses_live_detection(tiny_model):
    p = plan_for_file(tiny_model, 4096)
    assert p.fits and p.n_threads == detect_live().cpu.threads and p.n_ctx == 4096
    assert plan_for_file(tiny_model, 4096) is p  # cached per process
