"""Several PCs on loopback: two `r1local worker`s (llama.cpp's rpc-server) and the main process
share the layers of a real tiny model. Needs the RPC build (about a minute, once): run with
`scripts/test_rpc.sh` or `pytest -m rpc tests/test_rpc.py`."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import pytest
from conftest import ROOT, make_tiny_model
from serving import TEST_SETTINGS, isolated_store, running_server

from r1local.engine.model import Model
from r1local.engine.params import SamplingParams
from r1local.errors import MAX_TOKENS_EXIT, Cancelled
from r1local.rpc import build, load_split
from r1local.rpc.probe import reachable

pytestmark = pytest.mark.rpc
GREEDY = SamplingParams(temperature=0.0, max_tokens=24)
MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]


@pytest.fixture(scope="session", autouse=True)
def rpc_build():
    """Built once into build/rpc (or R1LOCAL_RPC_BUILD), kept across runs."""
    os.environ.setdefault("R1LOCAL_RPC_BUILD", str(ROOT / "build" / "rpc"))
    return build.ensure_built(print)


@pytest.fixture(scope="session")
def tiny4() -> Path:
    """The tiny model with four layers, so each of three processes can hold some."""
    return make_tiny_model.build_tiny_model(ROOT / "models" / "tiny-r1-qwen-4l.gguf", seed=0, n_layer=4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def worker(port: int):
    """`r1local worker` on 127.0.0.1:port until the block ends (or the test kills it)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "r1local", "worker", "--port", str(port), "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not reachable(f"127.0.0.1:{port}"):
            assert proc.poll() is None and time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.05)
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def two_workers():
    ports = [free_port(), free_port()]
    with worker(ports[0]) as first, worker(ports[1]) as second:
        yield [f"127.0.0.1:{p}" for p in ports], [first, second]


@pytest.fixture(scope="module")
def local_answer(tiny4):
    """The tiny model's greedy answer in this process alone."""
    with Model.load(tiny4, n_ctx=512, n_threads=1) as local:
        return local.chat(MESSAGES, params=GREEDY).result()


def _on(split, endpoint: str) -> float:
    """MiB of weights llama.cpp put on this worker."""
    return sum(mib for name, mib in split.buffers.items() if name.startswith("RPC") and endpoint in name)


def test_split_over_three_processes_answers_like_one(tiny4, two_workers, local_answer):
    endpoints, _ = two_workers
    # --gpu-layers 3: the output head and the last two layers leave, one layer per worker
    with load_split(tiny4, endpoints=endpoints, n_ctx=512, n_threads=1, n_gpu_layers=3) as split:
        assert [s.layers for s in split.plan.shares] == [2, 1, 1]
        assert all(_on(split, e) > 0 for e in endpoints)
        got = split.chat(MESSAGES, params=GREEDY).result()
    assert got.done.finish_reason == local_answer.done.finish_reason == "length"
    assert (got.reasoning, got.content) == (local_answer.reasoning, local_answer.content)
    assert got.reasoning  # the comparison is about real text


def test_a_tensor_split_moves_layers_between_the_workers(tiny4, two_workers, local_answer):
    endpoints, _ = two_workers
    with load_split(tiny4, endpoints=endpoints, n_ctx=512, n_threads=1, n_gpu_layers=5) as even:
        assert [s.layers for s in even.plan.shares] == [0, 2, 2]
        by_memory = [_on(even, e) for e in endpoints]
    # 3 to 1: llama.cpp deals all four layers to the first worker, the output head to the second
    with load_split(tiny4, endpoints=endpoints, n_ctx=512, n_threads=1, n_gpu_layers=5, tensor_split=[3, 1]) as skewed:
        assert [s.layers for s in skewed.plan.shares] == [0, 4, 0]
        first, second = (_on(skewed, e) for e in endpoints)
        got = skewed.chat(MESSAGES, params=GREEDY).result()
    assert first > by_memory[0] and second < by_memory[1]
    assert (got.reasoning, got.content) == (local_answer.reasoning, local_answer.content)


def _settings(model: Path, endpoints: list[str]):
    return replace(TEST_SETTINGS, models=(str(model),), rpc=tuple(endpoints), n_gpu_layers=3, ctx=2048, parallel=1)


def test_a_worker_killed_mid_stream_fails_that_request_and_the_model_comes_back(tiny4, two_workers, tmp_path):
    endpoints, procs = two_workers
    with isolated_store(tmp_path), running_server(_settings(tiny4, endpoints)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        before = client.chat.completions.create(model=tiny4.stem, messages=MESSAGES, max_tokens=24, temperature=0)
        stream = client.chat.completions.create(
            model=tiny4.stem,
            messages=MESSAGES,
            max_tokens=1800,
            temperature=0,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        with pytest.raises(openai.APIError) as caught:
            for n, _chunk in enumerate(stream):
                if n == 3:
                    procs[0].kill()
        assert f"RPC worker {endpoints[0]} stopped answering" in str(caught.value)

        health = httpx.get(f"{url}/health").json()  # the server is up and says which worker is not
        assert health["status"] == "ok"
        assert health["workers"] == [
            {"endpoint": endpoints[0], "status": "down"},
            {"endpoint": endpoints[1], "status": "up"},
        ]
        (listed,) = httpx.get(f"{url}/api/ps").json()["models"]  # ps too: which worker, and why the model stopped
        assert [w["status"] for w in listed["workers"]] == ["down", "up"] and endpoints[0] in listed["error"]
        assert f"over RPC workers: {endpoints[0]} down, {endpoints[1]} up" in _cli("ps", R1LOCAL_URL=url).stderr
        refused = httpx.post(f"{url}/v1/chat/completions", json={"model": tiny4.stem, "messages": MESSAGES})
        assert refused.status_code == 503 and endpoints[0] in refused.json()["error"]["message"]

        with worker(int(endpoints[0].rpartition(":")[2])):  # back on the same port: the next request reloads
            after = client.chat.completions.create(model=tiny4.stem, messages=MESSAGES, max_tokens=24, temperature=0)
            assert httpx.get(f"{url}/health").json()["workers"][0]["status"] == "up"
            (listed,) = httpx.get(f"{url}/api/ps").json()["models"]
            assert [w["status"] for w in listed["workers"]] == ["up", "up"] and "error" not in listed
    assert after.choices[0].message.content == before.choices[0].message.content
    assert after.choices[0].message.model_extra.get("reasoning_content") == before.choices[0].message.model_extra.get(
        "reasoning_content"
    )


def test_a_worker_started_after_the_server(tiny4, tmp_path):
    ports = [free_port(), free_port()]
    endpoints = [f"127.0.0.1:{p}" for p in ports]
    with isolated_store(tmp_path), running_server(_settings(tiny4, endpoints), ready=False) as url:
        body = {"model": tiny4.stem, "messages": MESSAGES, "max_tokens": 8}
        refused = httpx.post(f"{url}/v1/chat/completions", json=body)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "worker_unreachable"
        with worker(ports[0]), worker(ports[1]):
            answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
            assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 8


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "r1local", *args], capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


def test_run_over_workers_from_the_environment_answers_like_one(tiny4, two_workers):
    endpoints, _ = two_workers
    common = [
        "run",
        str(tiny4),
        "Why is the sky blue?",
        "--temperature",
        "0",
        "--max-tokens",
        "12",
        "--threads",
        "1",
        "--json",
    ]
    local = _cli(*common)
    split = _cli(*common, R1LOCAL_RPC=",".join(endpoints))
    assert local.returncode == split.returncode and split.returncode in (0, MAX_TOKENS_EXIT), split.stderr
    assert "over RPC: layers local:" in split.stderr
    assert json.loads(split.stdout)["reasoning"] == json.loads(local.stdout)["reasoning"] != ""


def test_hw_shows_the_workers_and_a_plan_over_them(two_workers):
    endpoints, _ = two_workers
    result = _cli("hw", "--json", "--rpc", ",".join(endpoints))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["rpc"]
    assert [w["endpoint"] for w in report["workers"]] == endpoints
    for w in report["workers"]:
        assert w["protocol"].startswith("7.") and w["devices"][0]["memory_total"] > 0
        assert w["latency_ms"] > 0 and w["bandwidth_mb_s"] > 0
    assert sum(report["best"]["layers"].values()) > 0 and "measured" in report["best"]["assumptions"]


def _split_children() -> list:
    return [p for p in multiprocessing.active_children() if p.name.startswith("r1local-split")]


def test_abort_reaches_the_split_loader(tiny4, two_workers):
    """Asked while the child process loads, a True abort ends it at once (it used to be swallowed)."""
    endpoints, _ = two_workers
    asked: list[float] = []

    def abort() -> bool:
        asked.append(time.monotonic())
        return len(asked) > 3  # two checks before the child starts, then the waiter leaves during its load

    with pytest.raises(Cancelled, match="stopped"):
        load_split(tiny4, endpoints=endpoints, n_ctx=512, n_threads=1, abort=abort)
    assert len(asked) == 4 and not _split_children()


def test_a_client_that_leaves_while_a_split_model_loads_stops_the_load(tiny4, two_workers, tmp_path):
    endpoints, _ = two_workers
    with isolated_store(tmp_path), running_server(_settings(tiny4, endpoints)) as url:
        httpx.post(f"{url}/api/generate", json={"model": tiny4.stem, "keep_alive": 0})  # unloaded: the next loads
        deadline = time.monotonic() + 20
        while (_split_children() or httpx.get(f"{url}/api/ps").json()["models"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        body = {"model": tiny4.stem, "messages": MESSAGES, "max_tokens": 4}
        with pytest.raises(httpx.ReadTimeout):  # the client leaves while the child process loads
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=httpx.Timeout(0.5, connect=5.0))
        deadline = time.monotonic() + 20
        while _split_children() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _split_children()
        time.sleep(1)
        assert httpx.get(f"{url}/api/ps").json()["models"] == []  # the load stopped; nothing was kept
