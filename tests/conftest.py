"""Shared fixtures. Models are real GGUF files built once into models/ and reused across runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from testhub import hub  # noqa: F401  (the local Hugging Face Hub fixture, for every test module)

ROOT = Path(__file__).resolve().parent.parent


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


make_tiny_model = _load_script("make_tiny_model")


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """A 2-layer random-weight Qwen2 GGUF with the real R1-distill tokenizer and chat template."""
    return make_tiny_model.build_tiny_model(ROOT / "models" / "tiny-r1-qwen.gguf", seed=0)


@pytest.fixture(scope="session")
def tiny_model_b() -> Path:
    """A second tiny model with other weights, for tests that serve two models."""
    return make_tiny_model.build_tiny_model(ROOT / "models" / "tiny-r1-qwen-b.gguf", seed=1)


@pytest.fixture(scope="session")
def tiny_model_long() -> Path:
    """A tiny model with heads of 128 (2 KiB of KV cache per token) trained for 1G tokens."""
    return make_tiny_model.build_tiny_model(
        ROOT / "models" / "tiny-r1-qwen-long.gguf", seed=0, n_embd=256, n_head=2, n_head_kv=2, context_length=1 << 30
    )


@pytest.fixture(scope="session")
def plain_model() -> Path:
    """A tiny model without a chat template: not a thinking model, no tool calls."""
    return make_tiny_model.build_tiny_model(ROOT / "models" / "tiny-plain.gguf", seed=2, chat_template=False)


@pytest.fixture(scope="session")
def bert_model() -> Path:
    """A tiny BERT embedding model that pools by its CLS token, as bge models do."""
    return make_tiny_model.build_tiny_bert(ROOT / "models" / "tiny-bert.gguf")


@pytest.fixture(scope="session")
def r1_header() -> Path:
    """The first ~95 MB of the real DeepSeek-R1-Distill-Qwen-7B Q4_K_M GGUF: complete metadata
    and tensor infos, cut-short tensor data."""
    return make_tiny_model.header_path()


@pytest.fixture(autouse=True)
def no_resident_server(monkeypatch):
    """Commands use a resident r1local serve when one answers: point them at a closed port so a server
    someone runs on this machine (recorded in their R1LOCAL_HOME) never answers a test. Set through
    R1LOCAL_URL, the older name R1LOCAL_HOST wins over, so a test's own R1LOCAL_HOST or R1LOCAL_URL wins."""
    monkeypatch.delenv("R1LOCAL_HOST", raising=False)
    monkeypatch.setenv("R1LOCAL_URL", "http://127.0.0.1:9")


def tiny_catalog(info, repo: str, quants: str) -> str:
    """A test catalog's head and its r1:tiny entry, shaped like the tiny model `info` describes;
    `quants` is the TOML inline table of its quantisations and sizes in GB."""
    return f"""
default_quant = "F16"
quant_order = ["Q8_0", "F16"]

[[model]]
name = "tiny"
file_prefix = "Tiny-R1"
repo = "{repo}"
arch = "qwen2"
params_b = {info.parameter_count / 1e9}
layers = {info.block_count}
embedding = {info.embedding_length}
heads = {info.head_count}
kv_heads = {info.head_count_kv}
head_dim = {info.key_length}
vocab = {info.vocab_size}
context = {info.context_length}
quants = {quants}
"""
