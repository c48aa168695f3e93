"""Build a random-weight stand-in for DeepSeek-R1-Distill-Qwen-1.5B, quantised to Q4_K_M.

Every tensor has the exact shape of the real model (Qwen2: 28 layers, n_embd 1536, 12 query and
2 KV heads of 128, FFN 8960, vocabulary 151936, an untied output head), the file carries the real
R1 tokenizer and chat template, and llama.cpp's own quantiser picks the same per-tensor types as
for the real model. The CPU does the same work per token as with the real weights, so the proxy
runs at the real model's speed; only the text it writes is noise. Used for benchmarks.

    python scripts/make_proxy_model.py [--out models/proxy-r1-qwen-1.5b-q4_k_m.gguf]

The F16 intermediate is written tensor by tensor (peak memory ~1.5 GB) and deleted afterwards; the
result records a key of its build settings, so a second run with the same settings does nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_tiny_model as tiny  # noqa: E402  (tokenizer copy and the real R1 header)

from r1local.errors import R1Error  # noqa: E402  (make_tiny_model put src/ on the path)
from r1local.gguf_meta import read_gguf  # noqa: E402

DEFAULT_OUT = tiny.ROOT / "models" / "proxy-r1-qwen-1.5b-q4_k_m.gguf"
KEY_FIELD = "r1local.proxy_model.key"

# DeepSeek-R1-Distill-Qwen-1.5B (config.json of the Hugging Face release; built on
# Qwen2.5-Math-1.5B, hence rope theta 10000 and an untied lm_head: 1.78B parameters).
R1_QWEN_1_5B = dict(
    n_layer=28,
    n_embd=1536,
    n_head=12,
    n_head_kv=2,
    n_ff=8960,
    n_vocab=151936,
    context_length=131072,
    rope_theta=10000.0,
    rms_eps=1e-6,
)
# DeepSeek-R1-Distill-Qwen-7B (built on Qwen2.5-Math-7B: 28 layers, n_embd 3584, 28 query and 4 KV
# heads of 128, FFN 18944, the padded 152064-row vocabulary, untied head: 7.6B parameters).
R1_QWEN_7B = dict(
    n_layer=28,
    n_embd=3584,
    n_head=28,
    n_head_kv=4,
    n_ff=18944,
    n_vocab=152064,
    context_length=131072,
    rope_theta=10000.0,
    rms_eps=1e-6,
)
SHAPES = {"1.5b": R1_QWEN_1_5B, "7b": R1_QWEN_7B}


def tensor_plan(n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, **_):
    """(name, shape, dtype, std) of every tensor, in the order llama.cpp's converter writes them."""
    kv_dim = n_head_kv * (n_embd // n_head)
    f16, f32 = np.float16, np.float32
    plan = [("token_embd.weight", (n_vocab, n_embd), f16, 1.0)]
    for i in range(n_layer):
        p = f"blk.{i}."
        plan += [
            (p + "attn_norm.weight", (n_embd,), f32, None),
            (p + "attn_q.weight", (n_embd, n_embd), f16, n_embd**-0.5),
            (p + "attn_q.bias", (n_embd,), f32, 0.1),
            (p + "attn_k.weight", (kv_dim, n_embd), f16, n_embd**-0.5),
            (p + "attn_k.bias", (kv_dim,), f32, 0.1),
            (p + "attn_v.weight", (kv_dim, n_embd), f16, n_embd**-0.5),
            (p + "attn_v.bias", (kv_dim,), f32, 0.1),
            (p + "attn_output.weight", (n_embd, n_embd), f16, n_embd**-0.5),
            (p + "ffn_norm.weight", (n_embd,), f32, None),
            (p + "ffn_gate.weight", (n_ff, n_embd), f16, n_embd**-0.5),
            (p + "ffn_up.weight", (n_ff, n_embd), f16, n_embd**-0.5),
            (p + "ffn_down.weight", (n_embd, n_ff), f16, n_ff**-0.5),
        ]
    plan += [
        ("output_norm.weight", (n_embd,), f32, None),
        ("output.weight", (n_vocab, n_embd), f16, 4.0 * n_embd**-0.5),
    ]
    return plan


def _tokenizer_for(n_vocab: int):
    """The real header's tokenizer keys, its padded token list cut or checked to n_vocab entries
    (the 7B's embedding has 152064 rows, the 1.5B's 151936; the tail is [PAD] filler)."""
    src = read_gguf(tiny.header_path(), require_complete=False, keep_arrays=True)
    meta = {k: v for k, v in src.metadata.items() if k.startswith("tokenizer.")}
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.scores"):
        if key in meta:
            if len(meta[key]) < n_vocab:
                raise RuntimeError(f"the R1 header has only {len(meta[key])} entries in {key}")
            meta[key] = list(meta[key])[:n_vocab]
    return SimpleNamespace(metadata=meta), src


def write_f16(path: Path, key: str, seed: int, shapes: dict) -> None:
    """Stream a random-weight F16 GGUF to path, one tensor in memory at a time."""
    import gguf  # a dev dependency only

    tok, src = _tokenizer_for(shapes["n_vocab"])
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_name(f"DeepSeek-R1-Distill-Qwen random-weight proxy, {shapes['n_embd']} wide")
    w.add_string(KEY_FIELD, key)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_context_length(shapes["context_length"])
    w.add_embedding_length(shapes["n_embd"])
    w.add_feed_forward_length(shapes["n_ff"])
    w.add_block_count(shapes["n_layer"])
    w.add_head_count(shapes["n_head"])
    w.add_head_count_kv(shapes["n_head_kv"])
    w.add_rope_freq_base(shapes["rope_theta"])
    w.add_layer_norm_rms_eps(shapes["rms_eps"])
    tiny.copy_tokenizer(w, tok)

    plan = tensor_plan(**shapes)
    for name, shape, dtype, _ in plan:
        w.add_tensor_info(name, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for _name, shape, dtype, std in plan:
        if std is None:  # norm weights
            data = np.ones(shape, dtype=dtype)
        else:
            data = rng.standard_normal(shape, dtype=np.float32)
            data *= std
            data = data.astype(dtype)
        w.write_tensor_data(data)
    w.close()


def quantize(src: Path, dst: Path, threads: int) -> None:
    """Q4_K_M with llama.cpp's quantiser (the same per-tensor type choices as for the real model)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize failed with code {rc}")


def default_out(shape: str) -> Path:
    return DEFAULT_OUT.with_name(f"proxy-r1-qwen-{shape}-q4_k_m.gguf")


def build_proxy_model(
    out_path: str | Path | None = None, seed: int = 0, *, threads: int = 2, force: bool = False, shape: str = "1.5b"
) -> Path:
    """Write the Q4_K_M proxy of a distill's shape to out_path (cached by a key of its settings)."""
    out_path = Path(out_path or default_out(shape))
    shapes = SHAPES[shape]
    key = tiny.build_key(kind=f"proxy-r1-qwen-{shape}-q4_k_m", seed=seed, **shapes)
    if not force and out_path.exists():
        try:
            if read_gguf(out_path).get(KEY_FIELD) == key:
                return out_path
        except R1Error:
            pass
    out_path.parent.mkdir(parents=True, exist_ok=True)
    f16 = out_path.with_name(out_path.stem + ".f16.tmp")
    q = out_path.with_name(out_path.stem + ".q.tmp")
    try:
        t0 = time.monotonic()
        write_f16(f16, key, seed, shapes)
        t1 = time.monotonic()
        print(f"wrote F16 {f16.stat().st_size / 1e9:.2f} GB in {t1 - t0:.0f} s; quantising...", file=sys.stderr)
        quantize(f16, q, threads)
        print(f"quantised in {time.monotonic() - t1:.0f} s", file=sys.stderr)
        os.replace(q, out_path)
    finally:
        f16.unlink(missing_ok=True)
        q.unlink(missing_ok=True)
    return out_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="1.5b", help="which distill's shapes (default 1.5b)")
    ap.add_argument("--out", type=Path, help="default: models/proxy-r1-qwen-SHAPE-q4_k_m.gguf")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="quantiser threads (default 2)")
    ap.add_argument("--force", action="store_true", help="rebuild even if the cached file matches")
    args = ap.parse_args()
    try:
        path = build_proxy_model(args.out, args.seed, threads=args.threads, force=args.force, shape=args.shape)
    except RuntimeError as e:
        sys.exit(str(e))
    print(f"{path} ({path.stat().st_size / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
