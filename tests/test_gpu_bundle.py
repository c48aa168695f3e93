"""The GPU check's bundle (scripts/gpu_bundle.sh): small enough to travel to the lent GPU machine,
complete, and its tokenizer-only GGUF makes the same models as the real R1 header."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import ROOT, make_tiny_model

from r1local.accelerate.build import sdist_version
from r1local.engine.model import Model

LIMIT = 60 * 2**20


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gpu-bundle")
    done = subprocess.run(
        [str(ROOT / "scripts" / "gpu_bundle.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "GPU_BUNDLE_DIR": str(folder), "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bundle: " in done.stdout
    return folder


def test_bundle_fits_and_holds_what_the_device_lacks(bundle):
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    assert size < LIMIT, f"{size / 2**20:.1f} MiB"
    (sdist,) = bundle.glob("llama_cpp_python-*.tar.gz")
    assert sdist_version(sdist) is not None
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    top = names[0].split("/")[0]
    lc = f"{top}/vendor/llama.cpp"
    for needed in (
        "CMakeLists.txt",
        f"{lc}/ggml/src/ggml-cuda/CMakeLists.txt",
        f"{lc}/ggml/src/ggml-cpu/CMakeLists.txt",
        f"{lc}/tools/server/server.cpp",
        f"{lc}/gguf-py/gguf/__init__.py",
        f"{top}/llama_cpp/llama_cpp.py",
    ):
        assert needed in names or f"{top}/{needed}" in names, needed
    assert not any(n.startswith((f"{top}/.git/", f"{lc}/models/", f"{lc}/ggml/src/ggml-vulkan/")) for n in names)
    wheels = {w.name.split("-")[0].lower() for w in (bundle / "wheels").glob("*.whl")}
    # missing from the image: the server's stack, the newer Hub client, the proxy writer, llama-cpp-python's diskcache
    lacking = set("fastapi uvicorn pydantic pydantic_core huggingface_hub gguf prompt_toolkit diskcache".split())
    assert lacking <= wheels
    assert not wheels & {"numpy", "typer", "rich", "psutil", "jinja2"}  # the image has these
    for wheel in (bundle / "wheels").glob("*.whl"):  # for CPython 3.12 on x86_64 Linux
        python, abi, platform = wheel.stem.split("-")[-3:]
        assert "py3" in python or "cp312" in python or abi == "abi3", wheel.name
        assert platform == "any" or "x86_64" in platform, wheel.name


def test_tokenizer_gguf_stands_in_for_the_header(tmp_path, tiny_model, monkeypatch):
    """A tiny model made from the bundle's tokenizer-only GGUF tokenizes and templates as the one
    made from the real 95 MB header does."""
    tokenizer = make_tiny_model.write_tokenizer_gguf(tmp_path / "tok.gguf")
    assert tokenizer.stat().st_size < 8 * 2**20
    monkeypatch.setenv(make_tiny_model.TOKENIZER_ENV, str(tokenizer))
    rebuilt = make_tiny_model.build_tiny_model(tmp_path / "tiny.gguf", seed=0)
    text = "<think>\nR1 reasons: 17 * 23 = 391 ✓</think> Done."
    a, b = Model.load(str(tiny_model), n_ctx=256, n_threads=1), Model.load(str(rebuilt), n_ctx=256, n_threads=1)
    try:
        assert a.tokenize(text) == b.tokenize(text)
        assert a.template.source == b.template.source and b.template.is_r1
    finally:
        a.close()
        b.close()


def test_source_archive_names_its_version():
    assert sdist_version(Path("llama_cpp_python-0.3.36.tar.gz")) == "0.3.36"
    assert sdist_version(Path("llama_cpp_python-0.3.36.zip")) is None
