"""The catalog file and what GGUF file names say: no disk, no network (names: test_names.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1local import catalog
from r1local.errors import ModelNotFound

ROOT = Path(__file__).resolve().parent.parent


def test_packaged_catalog_has_six_distills_in_six_quants():
    cat = catalog.load()
    assert [d.name for d in cat.distills] == ["1.5b", "7b", "8b", "14b", "32b", "70b"]
    for d in cat.distills:
        assert set(d.variants) == {"Q3_K_M", "IQ4_XS", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"}
        sizes = [v.size_bytes for v in cat.ordered(d)]
        assert sizes == sorted(sizes, reverse=True)  # best quality first, and bigger
        assert d.head_dim * d.heads == d.embedding and d.heads % d.kv_heads == 0
    # the repository copy is the packaged file itself
    assert (ROOT / "models" / "catalog.toml").resolve() == (ROOT / "src/r1local/data/catalog.toml").resolve()


def test_file_names_follow_the_repositories():
    cat = catalog.load()
    v = cat.variant("7b")
    assert (v.name, v.repo, v.files) == (
        "r1:7b-q4_k_m",
        "bartowski/DeepSeek-R1-Distill-Qwen-7B-GGUF",
        ("DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf",),
    )
    big = cat.variant("70b", "q8_0")
    assert big.files == tuple(
        f"DeepSeek-R1-Distill-Llama-70B-Q8_0/DeepSeek-R1-Distill-Llama-70B-Q8_0-0000{i}-of-00002.gguf" for i in (1, 2)
    )
    shape = cat.variant("8b", "Q8_0").shape
    assert (shape.layers, shape.kv_heads, shape.key_dim, shape.vocab) == (32, 8, 128, 128256)
    assert shape.file_bytes == 8_540_000_000 and shape.params == 8_030_000_000


def test_unknown_distill_or_quant_lists_the_choices():
    cat = catalog.load()
    with pytest.raises(ModelNotFound, match="r1:9b is not in the catalog") as info:
        cat.variant("9b")
    assert "r1:1.5b" in info.value.hint
    with pytest.raises(ModelNotFound, match="no Q2_K") as info:
        cat.variant("7b", "q2_k")
    assert "r1:7b-q8_0" in info.value.hint


def test_quant_and_split_parts_from_file_names():
    assert catalog.quant_of("DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf") == "Q4_K_M"
    assert catalog.quant_of("X-Q8_0/X-Q8_0-00002-of-00002.gguf") == "Q8_0"
    assert catalog.quant_of("model.iq4_xs.gguf") == "IQ4_XS"
    assert catalog.quant_of("tiny-r1-qwen.gguf") is None
    files = ["X-Q8_0/X-Q8_0-00001-of-00002.gguf", "X-Q8_0/X-Q8_0-00002-of-00002.gguf", "X-Q8_0.gguf"]
    assert catalog.pick_by_quant("r", "Q8_0", files) == ("X-Q8_0.gguf",)  # a single file wins
    assert catalog.pick_by_quant("r", "Q8_0", files[:2]) == tuple(files[:2])
    with pytest.raises(ModelNotFound, match="missing parts"):
        catalog.split_parts(files[0], [files[0]])


def test_catalog_override(tmp_path, monkeypatch):
    other = tmp_path / "catalog.toml"
    other.write_text("""
[[model]]
name = "tiny"
file_prefix = "Tiny"
repo = "test/Tiny-GGUF"
arch = "qwen2"
params_b = 0.01
layers = 2
embedding = 64
heads = 4
kv_heads = 2
head_dim = 16
vocab = 151936
context = 4096
quants = { Q8_0 = 0.02, Q4_K_M = { gb = 0.01, parts = 2 } }
""")
    monkeypatch.setenv("R1LOCAL_CATALOG", str(other))
    cat = catalog.load()
    assert [v.name for v in cat.variants()] == ["r1:tiny-q8_0", "r1:tiny-q4_k_m"]
    assert cat.variant("tiny").files == (
        "Tiny-Q4_K_M/Tiny-Q4_K_M-00001-of-00002.gguf",
        "Tiny-Q4_K_M/Tiny-Q4_K_M-00002-of-00002.gguf",
    )
