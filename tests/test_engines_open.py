"""The one door models are opened through: every load option reaches the loader that runs the
model (an abort stops llama.cpp's and OpenVINO's loads alike), and an upstream's model declares
what it can do instead of pretending a context it does not know."""

from __future__ import annotations

import pytest

from r1local.engine import registry
from r1local.engine.registry import LoadOptions
from r1local.engine.upstream import Upstream
from r1local.errors import Cancelled, UsageError
from r1local.names import ModelAddress


def test_an_abort_stops_a_llama_cpp_load(tiny_model):
    with pytest.raises(Cancelled):
        registry.load(tiny_model, options=LoadOptions(n_ctx=256, n_threads=1, abort=lambda: True))


def test_an_abort_stops_an_openvino_load(tiny_model):
    pytest.importorskip("openvino_genai")
    with pytest.raises(Cancelled, match="stopped"):
        registry.load(tiny_model, engine="openvino", options=LoadOptions(n_ctx=256, n_threads=1, abort=lambda: True))


def test_options_reach_the_loader(tiny_model):
    with registry.open(
        ModelAddress.parse(str(tiny_model), allow_paths=True),
        tiny_model,
        LoadOptions(name="named", n_ctx=256, n_parallel=2, n_threads=1),
    ) as model:
        assert (model.name, model.n_ctx, model.n_parallel) == ("named", 256, 2)
        assert model.capabilities.context_length == 256


def test_rpc_workers_take_gguf_models_on_llama_cpp_only(tiny_model):
    with pytest.raises(UsageError, match="RPC workers take GGUF models on llama.cpp"):
        registry.load(tiny_model, engine="openvino", options=LoadOptions(rpc=["127.0.0.1:9"]))


def test_an_upstream_model_declares_no_context_and_refuses_token_ids():
    upstream = Upstream("far", "http://127.0.0.1:9/v1")
    address = ModelAddress.parse("far/some-model", upstreams=["far"])
    model = registry.open(address, None, LoadOptions(), {"far": upstream})
    try:
        caps = model.capabilities
        assert caps.context_length is None and caps.thinking and not caps.tools and not caps.grammar
        with pytest.raises(UsageError, match="takes text, not token ids"):  # no AssertionError
            model._submit([1, 2], None, split_reasoning=True, in_reasoning=False)
    finally:
        upstream.close()
