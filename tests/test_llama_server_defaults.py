"""`r1local serve --n-predict`, `--seed` and `--temperature`: what a request that sets none of them gets, as
llama-server's -n and --seed give its clients; and scripts/llama_suite_plugin.py's mapping of
llama-server's command line onto `r1local serve`."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from serving import openai_client, serving

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import llama_suite_plugin  # noqa: E402

MODEL = "tiny-r1-qwen"


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model, n_predict=5, seed=42, temperature=0.0) as base:
        yield base


def test_a_request_without_a_length_gets_n_predict_and_its_own_length_wins(url):
    def completion(**body) -> dict:
        response = httpx.post(f"{url}/completion", json={"prompt": "Once upon a time", **body}, timeout=120)
        assert response.status_code == 200, response.text
        return response.json()

    assert completion()["tokens_predicted"] == 5
    assert completion(n_predict=3)["tokens_predicted"] == 3
    client = openai_client(url)
    assert client.completions.create(model=MODEL, prompt="Once").usage.completion_tokens == 5
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert chat.usage.completion_tokens == 5 and chat.choices[0].finish_reason == "length"


def test_a_request_without_a_seed_gets_the_servers_and_its_own_seed_wins(url):
    def text(**body) -> str:
        body = {"prompt": "Once upon a time", "temperature": 1.5, "n_predict": 12, **body}
        return httpx.post(f"{url}/completion", json=body, timeout=120).json()["content"]

    assert text() == text() == text(seed=42)
    assert len({text(seed=seed) for seed in range(1, 5)}) > 1  # other seeds sample otherwise


def test_a_request_without_a_temperature_gets_the_servers(url):
    def text(**body) -> str:
        body = {"prompt": "Once upon a time", "n_predict": 12, **body}
        return httpx.post(f"{url}/completion", json=body, timeout=120).json()["content"]

    assert len({text(seed=seed) for seed in range(1, 5)}) == 1  # the server's 0: greedy, whatever the seed


def test_the_suite_plugin_maps_llama_servers_flags_to_serve():
    command = llama_suite_plugin.r1local_command(
        ["--model", "/m/gemma.gguf", "--port", "9000", "-n", "64", "--seed", "42", "--pooling", "none", "--temp", "0.8"]
    )
    serve = command[command.index("serve") :]
    assert serve[:2] == ["serve", "/m/gemma.gguf"]
    flags = (
        ("--port", "9000"),
        ("--n-predict", "64"),
        ("--seed", "42"),
        ("--pooling", "none"),
        ("--temperature", "0.8"),
    )
    for flag, value in flags:
        assert serve[serve.index(flag) + 1] == value
    unlimited = llama_suite_plugin.r1local_command(["-m", "x.gguf", "-n", "-1", "--seed", "-1"])
    assert "--n-predict" not in unlimited and "--seed" not in unlimited  # llama-server's "none": r1local's default
