"""The fast GGUF reader on the real 7B header, the tiny models, and broken files."""

from __future__ import annotations

import struct
import time

import pytest

from r1local.errors import ModelFileError, ModelNotFound
from r1local.gguf_meta import ArrayInfo, GGUFInfo, TensorInfo, read_gguf


def test_real_r1_distill_header(r1_header):
    info = read_gguf(r1_header, require_complete=False)
    assert info.architecture == "qwen2"
    assert info.name == "DeepSeek R1 Distill Qwen 7B"
    assert (info.block_count, info.embedding_length, info.context_length) == (28, 3584, 131072)
    assert (info.head_count, info.head_count_kv, info.key_length, info.value_length) == (28, 4, 128, 128)
    assert info.file_type == "Q4_K_M"
    assert info.tokenizer_model == "gpt2" and info.get("tokenizer.ggml.pre") == "deepseek-r1-qwen"
    assert info.vocab_size == 152064
    assert info.get("tokenizer.ggml.merges") == ArrayInfo(type=8, length=151387)
    assert (info.bos_token_id, info.eos_token_id) == (151646, 151643)
    assert "<｜Assistant｜>" in info.chat_template
    assert 7.5e9 < info.parameter_count < 7.7e9
    # The package holds the first 95 MB of a 4.68 GB file.
    assert not info.is_complete
    assert info.data_end == 4_683_073_248


def test_real_header_bytes_per_layer(r1_header):
    info = read_gguf(r1_header, require_complete=False)
    layers, other = info.bytes_per_layer()
    assert sorted(layers) == list(range(28))
    assert sum(layers.values()) + other == info.tensor_bytes == info.data_end - info.data_offset
    # Q4_K_M mixes Q4_K and Q6_K layers; every layer is 100-200 MB, embeddings + head ~750 MB.
    assert all(100e6 < b < 200e6 for b in layers.values())
    assert 700e6 < other < 800e6


def test_reading_the_real_header_is_fast(r1_header):
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        read_gguf(r1_header, require_complete=False)
        best = min(best, time.perf_counter() - start)
    assert best < 0.15, f"{best * 1000:.0f} ms"


def test_truncated_real_file_is_reported_as_incomplete(r1_header):
    with pytest.raises(ModelFileError, match="download it again") as e:
        read_gguf(r1_header)
    assert "4,683,073,248" in str(e.value)


def test_tiny_model_metadata(tiny_model, r1_header):
    info = read_gguf(tiny_model)
    real = read_gguf(r1_header, require_complete=False)
    assert info.is_complete and info.file_type == "F16"
    assert (info.architecture, info.block_count, info.context_length) == ("qwen2", 2, 4096)
    assert info.vocab_size == real.vocab_size
    assert info.chat_template == real.chat_template
    assert (info.bos_token_id, info.eos_token_id) == (real.bos_token_id, real.eos_token_id)
    layers, _ = info.bytes_per_layer()
    assert sorted(layers) == [0, 1]


def test_tiny_models_differ(tiny_model, tiny_model_b):
    assert tiny_model.read_bytes()[-4096:] != tiny_model_b.read_bytes()[-4096:]
    assert read_gguf(tiny_model_b).name == "tiny-r1-qwen-b"


def test_missing_file(tmp_path):
    with pytest.raises(ModelNotFound, match="not found"):
        read_gguf(tmp_path / "nope.gguf")


@pytest.mark.parametrize("content", [b"", b"hello world, not a model", b"GGU"])
def test_not_gguf(tmp_path, content):
    path = tmp_path / "x.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelFileError):
        read_gguf(path)


def test_bad_magic_says_what_to_do(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ModelFileError, match="not a GGUF model file") as e:
        read_gguf(path)
    assert e.value.hint and "GGUF" in e.value.hint


def test_unsupported_version(tmp_path, tiny_model):
    path = tmp_path / "v9.gguf"
    path.write_bytes(b"GGUF" + (9).to_bytes(4, "little") + tiny_model.read_bytes()[8:4096])
    with pytest.raises(ModelFileError, match="version 9"):
        read_gguf(path)


@pytest.mark.parametrize(
    "where",
    ["magic+1", "counts", "first key", "tokenizer tokens", "merges", "tensor infos", "tensor data", "last byte"],
)
def test_truncated_copies(tmp_path, tiny_model, where):
    info = read_gguf(tiny_model)
    size = info.file_size
    cut = {
        "magic+1": 5,
        "counts": 12,
        "first key": 30,
        "tokenizer tokens": 1_000_000,
        "merges": 4_000_000,
        "tensor infos": info.data_offset - 40,  # padding before the data is < 32 bytes
        "tensor data": info.data_offset + 1000,
        "last byte": size - 1,
    }[where]
    path = tmp_path / "cut.gguf"
    with open(tiny_model, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read(cut))
    with pytest.raises(ModelFileError, match="download it again"):
        read_gguf(path)


def test_file_type_falls_back_to_the_most_common_matrix_type():
    tensors = [
        TensorInfo("token_embd.weight", (64, 100), 14, 0),
        TensorInfo("blk.0.attn_q.weight", (64, 64), 12, 0),
        TensorInfo("blk.0.ffn_up.weight", (64, 128), 12, 0),
        TensorInfo("blk.0.attn_norm.weight", (64,), 0, 0),
        TensorInfo("blk.0.ffn_norm.weight", (64,), 0, 0),
        TensorInfo("output_norm.weight", (64,), 0, 0),
    ]
    info = GGUFInfo(path=None, version=3, file_size=0, data_offset=0, metadata={}, tensors=tensors)
    assert info.file_type == "Q4_K"
    assert tensors[1].n_bytes == 64 * 64 // 256 * 144
    assert [t.layer for t in tensors[:2]] == [None, 0]


def _gguf_bytes(*kvs: tuple[str, int, bytes]) -> bytes:
    """A GGUF v3 header without tensors: each kv is (key, GGUF value type, encoded value)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs))
    for key, vtype, value in kvs:
        out += struct.pack("<Q", len(key)) + key.encode() + struct.pack("<I", vtype) + value
    return out


def _string(text: str) -> bytes:
    return struct.pack("<Q", len(text)) + text.encode()


def _nested_arrays(depth: int) -> bytes:
    """An array holding an array holding ... `depth` deep, the innermost one empty."""
    return struct.pack("<IQ", 9, 1) * (depth - 1) + struct.pack("<IQ", 4, 0)


HOSTILE_HEADERS = {
    "alignment 0": _gguf_bytes(("general.alignment", 4, struct.pack("<I", 0))),
    "alignment 48": _gguf_bytes(("general.alignment", 4, struct.pack("<I", 48))),
    "alignment as text": _gguf_bytes(("general.alignment", 8, _string("32"))),
    "alignment as float": _gguf_bytes(("general.alignment", 6, struct.pack("<f", 32.0))),
    "nested 10,000 deep": _gguf_bytes(("general.tags", 9, _nested_arrays(10_000))),
}


@pytest.mark.parametrize("name", HOSTILE_HEADERS)
def test_hostile_headers_are_one_line_errors(tmp_path, name):
    path = tmp_path / "hostile.gguf"
    path.write_bytes(HOSTILE_HEADERS[name])
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match="alignment|nests arrays") as e:
        read_gguf(path)
    assert time.perf_counter() - start < 1
    assert "\n" not in str(e.value)


def test_shallow_nested_arrays_and_a_power_of_two_alignment_are_read(tmp_path):
    path = tmp_path / "fine.gguf"
    path.write_bytes(
        _gguf_bytes(("general.alignment", 4, struct.pack("<I", 64)), ("general.tags", 9, _nested_arrays(3)))
    )
    info = read_gguf(path, require_complete=False)
    assert info.get("general.tags") == [[[]]] and info.data_offset % 64 == 0
