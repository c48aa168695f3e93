"""Several models: two at once, least-recently-used eviction, busy refusals, the memory check,
and /api/pull from a (loopback) hub."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server

from r1local.hardware import detect_live
from r1local.hardware.model import Memory

A, B = "tiny-r1-qwen", "tiny-r1-qwen-b"
OPTIONS = {"temperature": 0, "num_predict": 8}


def say(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def loaded(url: str) -> list[str]:
    return [m.model for m in ollama.Client(host=url).ps().models]


def test_two_models_served_at_once(tiny_model, tiny_model_b, tmp_path):
    settings = replace(TEST_SETTINGS, models=(str(tiny_model), str(tiny_model_b)), max_loaded=2)
    with isolated_store(tmp_path), running_server(settings) as url:
        assert sorted(loaded(url)) == [A, B]

        async def both():
            client = ollama.AsyncClient(host=url)
            return await asyncio.gather(
                *(client.chat(model=m, messages=say("Hi"), think=False, options=OPTIONS) for m in (A, B))
            )

        reply_a, reply_b = asyncio.run(both())
        assert reply_a.model == A and reply_b.model == B
        assert reply_a.message.content != reply_b.message.content  # other weights, other words


def test_max_loaded_evicts_the_least_recently_used(tiny_model, tiny_model_b, tmp_path):
    settings = replace(TEST_SETTINGS, models=(str(tiny_model), str(tiny_model_b)), max_loaded=1)
    with isolated_store(tmp_path), running_server(settings) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x")
        assert sorted(m.id for m in client.models.list().data) == [A, B]
        assert loaded(url) == [B]  # loaded second, so A made room
        client.chat.completions.create(model=A, messages=say("Hi"), max_tokens=2)
        assert loaded(url) == [A]
        client.chat.completions.create(model=B, messages=say("Hi"), max_tokens=2)
        assert loaded(url) == [B]


def test_a_busy_model_is_not_evicted(tiny_model, tiny_model_b, tmp_path):
    settings = replace(TEST_SETTINGS, models=(str(tiny_model), str(tiny_model_b)), max_loaded=1, ctx=4096)
    with isolated_store(tmp_path), running_server(settings) as url, httpx.Client(timeout=30) as client:
        long = {"model": B, "messages": say("Go on."), "max_tokens": 100000, "stream": True}
        with client.stream("POST", f"{url}/v1/chat/completions", json=long) as running:
            lines = running.iter_lines()  # kept: dropping the iterator would close the connection
            assert next(lines)
            refused = httpx.post(
                f"{url}/v1/chat/completions", json={"model": A, "messages": say("Hi"), "max_tokens": 2}
            )
            assert refused.status_code == 503 and "--max-loaded" in refused.json()["error"]["message"]
        assert loaded(url) == [B]


def test_memory_check_refuses_with_507_instead_of_swapping(tiny_model, tmp_path):
    machine = replace(detect_live(), gpus=[], memory=Memory(total=64 * 2**20, available=16 * 2**20))
    settings = replace(TEST_SETTINGS, models=(str(tiny_model),), check_memory=True)
    with isolated_store(tmp_path), running_server(settings, ready=False, hardware=lambda: machine) as url:
        while (health := httpx.get(f"{url}/health")).json()["status"] == "loading":
            time.sleep(0.05)
        assert health.status_code == 503 and "does not fit" in health.json()["failed"][A]  # not healthy
        assert loaded(url) == []  # the start-up load was refused; the server still answers
        response = httpx.post(f"{url}/v1/chat/completions", json={"model": A, "messages": say("Hi")})
        assert response.status_code == 507
        error = response.json()["error"]
        assert error["code"] == "insufficient_memory" and "does not fit" in error["message"]


def test_pull_streams_progress_then_serves_the_model(hub, tiny_model, tmp_path):  # noqa: F811
    data = tiny_model.read_bytes()
    hub.add("someone/Tiny-R1-GGUF", {"Tiny-R1-Q8_0.gguf": data})
    name = "hf.co/someone/Tiny-R1-GGUF:Q8_0"
    with running_server(TEST_SETTINGS) as url:
        client = ollama.Client(host=url)
        with pytest.raises(ollama.ResponseError) as missing:
            client.chat(model=name, messages=say("Hi"))
        assert missing.value.status_code == 404 and "pull" in str(missing.value)
        progress = list(client.pull(name, stream=True))
        assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
        assert max(p.completed or 0 for p in progress) == len(data) == progress[-2].total
        assert "someone/Tiny-R1-GGUF/Tiny-R1-Q8_0.gguf" in [m.model for m in client.list().models]
        assert client.chat(model=name, messages=say("Hi"), options=OPTIONS).done
        with pytest.raises(ollama.ResponseError) as unknown:
            client.pull("hf.co/someone/Nothing-GGUF:Q8_0")
        assert unknown.value.status_code in (404, 502)

        assert client.delete(name).status == "success"  # Ollama's /api/delete, the loaded model included
        assert "someone/Tiny-R1-GGUF/Tiny-R1-Q8_0.gguf" not in [m.model for m in client.list().models]
        assert not list(Path(os.environ["HF_HUB_CACHE"]).rglob("*Tiny-R1*"))  # the bytes are gone from the cache
        for gone, status in ((name, 404), (str(tiny_model), 400)):  # deleted already; a file of the user's
            with pytest.raises(ollama.ResponseError) as refused:
                client.delete(gone)
            assert refused.value.status_code == status
        assert tiny_model.is_file()
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_pull_from_a_hostile_hub_writes_nothing_outside_the_cache(hub, tmp_path):  # noqa: F811
    name = "../../../../../escape-Q8_0.gguf"
    hub.add("evil/Repo", {name: b"GGUF" + b"x" * 100})
    victim = tmp_path / "escape-Q8_0.gguf"
    victim.write_text("keep me")
    with running_server(TEST_SETTINGS) as url:
        with pytest.raises(ollama.ResponseError) as refused:
            list(ollama.Client(host=url).pull("hf.co/evil/Repo:Q8_0", stream=True))
    assert "unsafe file name" in str(refused.value) and victim.read_text() == "keep me"
    assert hub.gets("escape-Q8_0.gguf") == []


def _cache_file(cache: Path, repo: str, name: str, data: bytes) -> None:
    """`data` as `name` of `repo` in the Hugging Face cache layout, on its main branch."""
    storage = cache / ("models--" + repo.replace("/", "--"))
    commit = "0" * 40
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    (storage / "snapshots" / commit).mkdir(parents=True)
    (storage / "snapshots" / commit / name).write_bytes(data)


def test_a_damaged_file_in_the_cache_is_listed_as_damaged_never_fatal(tiny_model, tmp_path):
    from test_gguf_meta import HOSTILE_HEADERS
    from typer.testing import CliRunner

    from r1local.cli import app

    cache = tmp_path / "hf-cache"
    _cache_file(cache, "someone/Good-GGUF", "Good-F16.gguf", tiny_model.read_bytes())
    for i, header in enumerate(HOSTILE_HEADERS.values()):
        _cache_file(cache, f"someone/Bad{i}-GGUF", "Bad-F16.gguf", header)
    good = "someone/Good-GGUF/Good-F16.gguf"
    with isolated_store(tmp_path), running_server(replace(TEST_SETTINGS, models=())) as url:
        tags = httpx.get(f"{url}/api/tags")
        assert tags.status_code == 200 and [m["name"] for m in tags.json()["models"]] == [good]
        models = httpx.get(f"{url}/v1/models")
        assert models.status_code == 200 and [m["id"] for m in models.json()["data"]] == [good]
        listed = CliRunner().invoke(app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.count("damaged or cut short") == len(HOSTILE_HEADERS)
