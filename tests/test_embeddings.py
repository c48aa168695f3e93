"""Embeddings through the real openai and ollama clients, compared with llama-cpp-python's own
embed() on the same GGUF (mean pooling for a chat model, normalised)."""

from __future__ import annotations

import math

import httpx
import ollama
import openai
import pytest
from serving import openai_client, serving

MODEL = "tiny-r1-qwen"
TEXTS = ["The sky is blue because of Rayleigh scattering.", "Paris is the capital of France.", "x"]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.fixture(scope="module")
def reference(tiny_model) -> list[list[float]]:
    from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama

    llm = Llama(
        str(tiny_model), embedding=True, pooling_type=LLAMA_POOLING_TYPE_MEAN, n_ctx=512, n_threads=1, verbose=False
    )
    try:
        return [llm.embed(text, normalize=True) for text in TEXTS]
    finally:
        llm.close()


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model) as base:
        yield base


def test_openai_client_gets_llama_cpps_vectors(url, reference):
    client = openai_client(url)
    reply = client.embeddings.create(model=MODEL, input=TEXTS)  # the client asks for base64 and decodes it
    assert [d.index for d in reply.data] == [0, 1, 2] and reply.usage.prompt_tokens > 0
    for got, want in zip(reply.data, reference, strict=True):
        assert len(got.embedding) == len(want) and cosine(got.embedding, want) >= 0.999
        assert abs(math.sqrt(sum(x * x for x in got.embedding)) - 1) < 1e-4
    floats = client.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="float")
    assert cosine(floats.data[0].embedding, reference[0]) >= 0.999


def test_dimensions_shorten_and_renormalise(url, reference):
    client = openai_client(url)
    short = client.embeddings.create(model=MODEL, input=TEXTS[0], dimensions=16, encoding_format="float")
    vector = short.data[0].embedding
    assert len(vector) == 16 and abs(math.sqrt(sum(x * x for x in vector)) - 1) < 1e-4
    assert cosine(vector, reference[0][:16]) >= 0.999
    with pytest.raises(openai.BadRequestError, match="dimensions"):
        client.embeddings.create(model=MODEL, input="x", dimensions=100_000)


def test_ollama_client_embed_and_the_older_route(url, reference):
    client = ollama.Client(host=url)
    reply = client.embed(model=MODEL, input=TEXTS)
    assert len(reply.embeddings) == 3 and reply.prompt_eval_count > 0
    assert all(cosine(got, want) >= 0.999 for got, want in zip(reply.embeddings, reference, strict=True))
    older = client.embeddings(model=MODEL, prompt=TEXTS[1])
    assert cosine(older.embedding, reference[1]) >= 0.999


def test_too_long_inputs_are_cut_or_refused(url):
    long_text = "word " * 5000  # more than the 2048-token embedding context of a chat model
    assert len(ollama.Client(host=url).embed(model=MODEL, input=long_text).embeddings) == 1  # truncate: true
    reply = httpx.post(f"{url}/api/embed", json={"model": MODEL, "input": long_text, "truncate": False})
    assert reply.status_code == 400 and "embeds at most" in reply.json()["error"]
    reply = httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": [[1, 2, 10**9]]})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "input"


def test_cli_embed_prints_the_servers_vectors(tiny_model, reference):
    import json

    from typer.testing import CliRunner

    from r1local.cli import app

    result = CliRunner().invoke(app, ["embed", str(tiny_model), TEXTS[0], TEXTS[1], "--threads", "1", "--ctx", "256"])
    assert result.exit_code == 0, result.output
    vectors = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(vectors) == 2 and all(cosine(v, r) >= 0.999 for v, r in zip(vectors, reference[:2], strict=True))


def test_an_embedding_model_pools_as_its_file_says(bert_model, tmp_path_factory):
    from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama

    def embed_with(**pooling) -> list[list[float]]:
        llm = Llama(str(bert_model), embedding=True, n_ctx=512, n_threads=1, verbose=False, **pooling)
        try:
            return [llm.embed(text, normalize=True) for text in TEXTS]
        finally:
            llm.close()

    own, mean = embed_with(), embed_with(pooling_type=LLAMA_POOLING_TYPE_MEAN)  # the file says CLS
    with serving(tmp_path_factory, bert_model) as url:
        got = openai_client(url).embeddings.create(model="tiny-bert", input=TEXTS).data
    assert all(cosine(g.embedding, want) >= 0.999 for g, want in zip(got, own, strict=True))
    assert cosine(got[0].embedding, mean[0]) < 0.99  # not mean pooling
