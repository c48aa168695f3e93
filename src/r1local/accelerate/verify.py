"""Does the installed llama.cpp build put a model on its GPU? Run in a fresh process (the build
just installed is not the one this process loaded):

    python -m r1local.accelerate.verify [GGUF_PY_DIR]   -> one JSON object on stdout

A tiny random-weight model, written with llama.cpp's own GGUF writer from the same sources, is
loaded with every layer offloaded and decodes a few tokens; llama.cpp's account of where it put
the buffers and the ggml devices' free memory before and after tell whether the GPU holds them.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

N_LAYER, N_EMBD, N_HEAD, N_FF, N_VOCAB = 2, 64, 4, 128, 256


def write_probe_model(path: Path, gguf) -> Path:
    """A 2-layer Llama-shaped F32 model with a vocabulary of numbered tokens (no tokenizer needed)."""
    import numpy as np

    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("r1local-probe")
    w.add_context_length(512)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_block_count(N_LAYER)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_vocab_size(N_VOCAB)
    w.add_tokenizer_model("none")

    def normal(*shape):
        return (rng.standard_normal(shape) / math.sqrt(shape[-1])).astype(np.float32)

    w.add_tensor("token_embd.weight", normal(N_VOCAB, N_EMBD) * math.sqrt(N_EMBD))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.add_tensor("output.weight", normal(N_VOCAB, N_EMBD))
    for i in range(N_LAYER):
        for name, shape in (
            ("attn_q", (N_EMBD, N_EMBD)),
            ("attn_k", (N_EMBD, N_EMBD)),
            ("attn_v", (N_EMBD, N_EMBD)),
            ("attn_output", (N_EMBD, N_EMBD)),
            ("ffn_gate", (N_FF, N_EMBD)),
            ("ffn_up", (N_FF, N_EMBD)),
            ("ffn_down", (N_EMBD, N_FF)),
        ):
            w.add_tensor(f"blk.{i}.{name}.weight", normal(*shape))
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _device_memory() -> dict[str, int]:
    from ..hardware import detect_now

    build = detect_now().build
    return {d.name: d.memory_free for d in build.devices if d.memory_free} if build else {}


def _decode_ok(native) -> bool:
    """Decode four tokens; the logits must be finite and not all equal."""
    from ..engine.bindings import C

    tokens = (C.llama_token * 4)(1, 2, 3, 4)
    if C.llama_decode(native.ctx, C.llama_batch_get_one(tokens, 4)) != 0:
        return False
    logits = C.llama_get_logits_ith(native.ctx, -1)
    row = [logits[i] for i in range(N_VOCAB)]
    return all(math.isfinite(x) for x in row) and max(row) > min(row)


def probe(gguf_py: Path | None) -> dict:
    if gguf_py is not None:  # llama.cpp's own writer, else the gguf package installed here
        sys.path.insert(0, str(gguf_py))
    import gguf

    from ..engine.native import NativeModel
    from ..hardware import detect_now

    hw = detect_now()
    before = _device_memory()
    with tempfile.TemporaryDirectory(prefix="r1local-probe-") as tmp:
        model = write_probe_model(Path(tmp) / "probe.gguf", gguf)
        native = NativeModel(model, n_ctx_seq=256, n_seq=1, n_gpu_layers=N_LAYER + 1, n_threads=1, n_batch=64)
        try:
            during = _device_memory()
            decoded = _decode_ok(native)
        finally:
            native.close()
    return {
        "backends": sorted(hw.build.backends) if hw.build else [],
        "devices": [d.__dict__ for d in hw.build.devices] if hw.build else [],
        "offloaded": native.placement.offloaded,
        "offloadable": native.placement.offloadable,
        "on_devices": native.placement.on_devices(),
        "memory_taken": {name: free - during.get(name, free) for name, free in before.items()},
        "decoded": decoded,
        "verdicts": [v.__dict__ for v in hw.verdicts if v.kind == "gpu"],
        "note": hw.build.cpu_fallback_note() if hw.build else None,
    }


def main() -> None:
    sys.stdout.write(json.dumps(probe(Path(sys.argv[1]) if len(sys.argv) > 1 else None)) + "\n")


if __name__ == "__main__":
    main()
