"""A model file cannot hold the server: a chat template that loops, allocates or recurses without
end fails its own requests in one line, within its bounds, while another model and /tokenize
answer as fast as before."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import pytest
from conftest import ROOT, make_tiny_model
from serving import TEST_SETTINGS, isolated_store, running_server
from test_template import HOSTILE_TEMPLATES
from typer.testing import CliRunner

from r1local.cli import app
from r1local.engine import template_sandbox

LOOP = next(iter(HOSTILE_TEMPLATES))  # two nested loops of 100,000: hours without a bound
HEALTHY, HOSTILE = "tiny-r1-qwen", "tiny-hostile-template"


@pytest.fixture(scope="module")
def hostile_model():
    return make_tiny_model.build_tiny_model(ROOT / "models" / f"{HOSTILE}.gguf", seed=4, chat_template=LOOP)


def _chat(client: httpx.Client, url: str, model: str, tokens: int = 20) -> httpx.Response:
    return client.post(
        f"{url}/v1/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": tokens,
            "temperature": 0,
            "ignore_eos": True,
        },
    )


def _timed(call) -> float:
    start = time.perf_counter()
    response = call()
    assert response.status_code == 200, response.text
    return time.perf_counter() - start


def test_a_hostile_template_holds_neither_another_model_nor_tokenize(tiny_model, hostile_model, tmp_path, monkeypatch):
    monkeypatch.setattr(template_sandbox, "RENDER_TIMEOUT_S", 1.0)
    settings = replace(TEST_SETTINGS, models=(str(tiny_model), str(hostile_model)), max_loaded=2, parallel=4)
    with isolated_store(tmp_path), running_server(settings) as url, httpx.Client(timeout=120) as client:

        def healthy():
            return _chat(client, url, HEALTHY)

        def tokenize():
            return client.post(f"{url}/tokenize", json={"model": HEALTHY, "content": "Hi there"})

        healthy()  # warm
        alone = statistics.median(_timed(healthy) for _ in range(3))
        tokenize_alone = statistics.median(_timed(tokenize) for _ in range(3))

        with ThreadPoolExecutor(8) as pool:
            attacks = [pool.submit(_chat, client, url, HOSTILE) for _ in range(8)]
            time.sleep(0.3)  # the attacks hold the hostile model's threads and its template's child
            loaded = [_timed(healthy) for _ in range(3)]
            tokenize_loaded = [_timed(tokenize) for _ in range(3)]
            still_running = sum(not attack.done() for attack in attacks)
            refusals = [attack.result() for attack in attacks]
        assert still_running > 0, "the attacks ended before the measurement"
        print(
            f"\n20 tokens of {HEALTHY}: alone {alone:.3f} s, beside 8 hostile requests "
            f"{statistics.median(loaded):.3f} s; /tokenize {tokenize_alone * 1000:.1f} -> "
            f"{statistics.median(tokenize_loaded) * 1000:.1f} ms"
        )
        # 3x, plus a little for a machine busy with other work
        assert statistics.median(loaded) < 3 * alone + 0.2
        assert statistics.median(tokenize_loaded) < 3 * tokenize_alone + 0.2
        for refusal in refusals:
            assert refusal.status_code == 400
            assert refusal.json()["error"]["message"] == (
                "The model's chat template failed on these messages: it ran longer than 1 s"
            )
        assert httpx.get(f"{url}/health").status_code == 200


def test_run_with_a_hostile_template_is_one_line(hostile_model, monkeypatch):
    monkeypatch.setattr(template_sandbox, "RENDER_TIMEOUT_S", 1.0)
    monkeypatch.delenv("R1LOCAL_DEBUG", raising=False)
    result = CliRunner().invoke(app, ["run", str(hostile_model), "--ctx", "256", "--threads", "1", "Hi"])
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines()[0].endswith("it ran longer than 1 s"), result.output
    assert "Traceback" not in result.output
