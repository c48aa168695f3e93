"""Fast GGUF metadata reader: header, key/values and tensor infos, without loading tensor data.

Large arrays (the tokenizer's ~150k tokens and merges) are skipped and recorded as their element
type and length, so reading a multi-GB model's metadata takes milliseconds. The ggml type table is
copied here (from ggml.h / gguf-py) so the runtime does not depend on the `gguf` package.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelFileError, ModelNotFound

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
SHORT_ARRAY = 64  # arrays shorter than this are kept as lists
MAX_ARRAY_DEPTH = 8  # arrays of arrays: llama.cpp reads none; a hostile file nests thousands deep

# GGUF value types -> struct format (scalars); 8 = string, 9 = array.
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")

# ggml type id -> (name, elements per block, bytes per block)
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}

# general.file_type -> the quantisation name people use (llama_ftype in llama.h)
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
}

_REDOWNLOAD = "The file is incomplete; delete it and download it again."


@dataclass(frozen=True)
class ArrayInfo:
    """A long array left unread: its GGUF element type and length."""

    type: int
    length: int

    def __len__(self) -> int:
        return self.length


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: shape[0] is the contiguous dimension
    ggml_type: int
    offset: int  # relative to GGUFInfo.data_offset

    @property
    def type_name(self) -> str:
        return GGML_TYPES.get(self.ggml_type, (f"type{self.ggml_type}",))[0]

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int:
        if self.ggml_type not in GGML_TYPES:
            raise ModelFileError(
                f"Tensor {self.name} uses ggml type {self.ggml_type}, unknown to r1local.",
                "Use a GGUF quantised with a common type (e.g. Q4_K_M) or upgrade r1local.",
            )
        _, block, size = GGML_TYPES[self.ggml_type]
        return self.n_elements // block * size

    @property
    def layer(self) -> int | None:
        """The block index for `blk.N.*` tensors, None for embeddings, output and norms."""
        if self.name.startswith("blk."):
            idx = self.name.split(".", 2)[1]
            if idx.isdigit():
                return int(idx)
        return None


@dataclass
class GGUFInfo:
    path: Path
    version: int
    file_size: int
    data_offset: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def _arch(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def architecture(self) -> str:
        return self.metadata.get("general.architecture", "")

    @property
    def name(self) -> str | None:
        return self.metadata.get("general.name")

    @property
    def context_length(self) -> int | None:
        return self._arch("context_length")

    @property
    def block_count(self) -> int | None:
        return self._arch("block_count")

    @property
    def embedding_length(self) -> int | None:
        return self._arch("embedding_length")

    @property
    def head_count(self) -> int | None:
        return self._arch("attention.head_count")

    @property
    def head_count_kv(self) -> int | None:
        return self._arch("attention.head_count_kv", self.head_count)

    @property
    def key_length(self) -> int | None:
        width, heads = self.embedding_length, self.head_count
        default = width // heads if width and heads else None
        return self._arch("attention.key_length", default)

    @property
    def value_length(self) -> int | None:
        return self._arch("attention.value_length", self.key_length)

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    @property
    def file_type(self) -> str:
        """Quantisation name (Q4_K_M...), from general.file_type or the most common tensor type."""
        ftype = self.metadata.get("general.file_type")
        if ftype in FILE_TYPES:
            return FILE_TYPES[ftype]
        if not self.tensors:
            return "unknown"
        counts = Counter(t.type_name for t in self.tensors if len(t.shape) > 1) or Counter(
            t.type_name for t in self.tensors
        )
        return counts.most_common(1)[0][0]

    @property
    def chat_template(self) -> str | None:
        return self.metadata.get("tokenizer.chat_template")

    @property
    def tokenizer_model(self) -> str | None:
        return self.metadata.get("tokenizer.ggml.model")

    @property
    def vocab_size(self) -> int | None:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        return len(tokens) if tokens is not None else self._arch("vocab_size")

    @property
    def bos_token_id(self) -> int | None:
        return self.metadata.get("tokenizer.ggml.bos_token_id")

    @property
    def eos_token_id(self) -> int | None:
        return self.metadata.get("tokenizer.ggml.eos_token_id")

    @property
    def data_end(self) -> int:
        """Where the last tensor's data ends: the size a complete file has at least."""
        if not self.tensors:
            return self.data_offset
        return self.data_offset + max(t.offset + t.n_bytes for t in self.tensors)

    @property
    def is_complete(self) -> bool:
        return self.file_size >= self.data_end

    def bytes_per_layer(self) -> tuple[dict[int, int], int]:
        """Tensor bytes of each `blk.N` layer, and the bytes outside the layers
        (token embeddings, output head, final norm)."""
        layers: dict[int, int] = {}
        other = 0
        for t in self.tensors:
            if t.layer is None:
                other += t.n_bytes
            else:
                layers[t.layer] = layers.get(t.layer, 0) + t.n_bytes
        return layers, other


class _Truncated(Exception):
    pass


class _Cursor:
    """Reads little-endian GGUF values from a buffer; running past its end raises _Truncated."""

    def __init__(self, buf, keep_arrays: bool):
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.keep_arrays = keep_arrays
        self.depth = 0  # arrays being read around the current value

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > self.end:
            raise _Truncated
        value = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def u32(self) -> int:
        return self.unpack("I")[0]

    def u64(self) -> int:
        return self.unpack("Q")[0]

    def string(self) -> str:
        n = self.u64()
        if self.pos + n > self.end:
            raise _Truncated
        s = bytes(self.buf[self.pos : self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return s

    def value(self, vtype: int) -> Any:
        if vtype in _SCALAR:
            return self.unpack(_SCALAR[vtype])[0]
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            if self.depth >= MAX_ARRAY_DEPTH:
                raise ModelFileError(
                    f"The GGUF header nests arrays more than {MAX_ARRAY_DEPTH} deep.",
                    "The file is damaged or not a GGUF model.",
                )
            self.depth += 1
            try:
                return self.array()
            finally:
                self.depth -= 1
        raise ModelFileError(f"Unknown GGUF value type {vtype}.", "The file is damaged or not a GGUF model.")

    def array(self) -> Any:
        etype, n = self.u32(), self.u64()
        if n < SHORT_ARRAY or self.keep_arrays:
            if etype in _SCALAR:  # one unpack for the whole array
                fmt = f"{n}{_SCALAR[etype]}"
                return list(self.unpack(fmt))
            return [self.value(etype) for _ in range(n)]
        self.skip_array(etype, n)
        return ArrayInfo(etype, n)

    def skip_array(self, etype: int, n: int) -> None:
        if etype in _SCALAR:
            self.pos += n * struct.calcsize(_SCALAR[etype])
        elif etype == _STRING:
            # The hot loop of the reader (~300k tokenizer strings): keep it bare.
            pos, buf, unpack_from = self.pos, self.buf, _U64.unpack_from
            for _ in range(n):
                pos += 8 + unpack_from(buf, pos)[0]
            self.pos = pos
        else:
            for _ in range(n):
                self.value(etype)
        if self.pos > self.end:
            raise _Truncated


def read_gguf(path: str | Path, *, require_complete: bool = True, keep_arrays: bool = False) -> GGUFInfo:
    """Read a GGUF file's header, metadata and tensor infos.

    require_complete: raise ModelFileError when the tensor data is shorter than the tensor infos
    promise (an interrupted download). keep_arrays: read every array in full (slow; for tools that
    copy a tokenizer).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFound(f"Model file not found: {path}", "Check the path, or download the model first.")
    file_size = path.stat().st_size
    if file_size == 0:
        raise ModelFileError(f"{path} is empty.", _REDOWNLOAD)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if mm[:4] != GGUF_MAGIC:
            raise ModelFileError(
                f"{path} is not a GGUF model file (it starts with {bytes(mm[:4])!r}, not b'GGUF').",
                "r1local runs GGUF models only: pick a .gguf file, e.g. from a *-GGUF Hugging Face repo.",
            )
        try:
            info = _parse(path, mm, file_size, keep_arrays)
        except _Truncated:
            raise ModelFileError(f"{path} is cut short inside its header.", _REDOWNLOAD) from None
        except struct.error:  # unpack_from past the end in the string-skipping loop
            raise ModelFileError(f"{path} is cut short inside its header.", _REDOWNLOAD) from None
    if require_complete and not info.is_complete:
        raise ModelFileError(f"{path} is {file_size:,} bytes but its tensors need {info.data_end:,}.", _REDOWNLOAD)
    return info


def _parse(path: Path, buf, file_size: int, keep_arrays: bool) -> GGUFInfo:
    cur = _Cursor(buf, keep_arrays)
    cur.pos = 4
    version = cur.u32()
    if version not in (2, 3):
        raise ModelFileError(
            f"{path} is GGUF version {version}; r1local reads versions 2 and 3.",
            "Convert or download the model again with a current llama.cpp.",
        )
    n_tensors, n_kv = cur.u64(), cur.u64()
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise ModelFileError(f"{path} has an implausible GGUF header.", "The file is damaged; download it again.")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.u32())
    tensors = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.u32()
        if n_dims > 8:
            raise ModelFileError(f"{path}: tensor {name} has {n_dims} dimensions.", "The file is damaged.")
        shape = cur.unpack(f"{n_dims}Q")
        ggml_type, offset = cur.u32(), cur.u64()
        tensors.append(TensorInfo(name, tuple(shape), ggml_type, offset))
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
        raise ModelFileError(
            f"{path}: general.alignment is {alignment!r}, not a positive power of two.",
            "The file is damaged; download it again.",
        )
    data_offset = -(-cur.pos // alignment) * alignment
    return GGUFInfo(path, version, file_size, data_offset, metadata, tensors)
