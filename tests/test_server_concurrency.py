"""Slots, the wait queue and disconnects, seen from HTTP clients."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server

MODEL = "tiny-r1-qwen"
# A long generation (clamped to the context) keeps a slot busy while the test looks around.
LONG = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Go on forever."}],
    "max_tokens": 100000,
    "stream": True,
}
SHORT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    settings = replace(TEST_SETTINGS, models=(str(tiny_model),), parallel=1, max_queue=1, ctx=4096)
    with isolated_store(tmp_path_factory.mktemp("store")), running_server(settings) as base:
        yield base


def gauge(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(rf'^{name}{{model="{MODEL}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def first_token(response: httpx.Response) -> Iterator[str]:
    """Read the stream until a reasoning delta arrives (the request holds a slot); return the
    line iterator, which must stay referenced: dropping it closes the connection."""
    lines = response.iter_lines()
    for line in lines:
        if "reasoning_content" in line:
            return lines
    raise AssertionError("the stream ended before its first token")


def test_disconnect_cancels_the_sequence_and_frees_the_slot(url):
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{url}/v1/chat/completions", json=LONG) as response:
            lines = first_token(response)
            assert gauge(url, "r1local_busy_slots") == 1
            assert next(lines) is not None  # still streaming
        # the connection is closed mid-stream
    wait_for(lambda: gauge(url, "r1local_busy_slots") == 0, seconds=2)
    text = httpx.get(f"{url}/metrics").text
    assert re.search(r'r1local_requests_total{api="openai",finish_reason="cancelled",model="tiny-r1-qwen"} 1', text)
    started = time.monotonic()
    assert httpx.post(f"{url}/v1/chat/completions", json=SHORT).status_code == 200
    assert time.monotonic() - started < 2


def test_full_queue_is_503_with_retry_after_and_never_a_hang(url):
    with httpx.Client(timeout=30) as a, httpx.Client(timeout=30) as b:
        with a.stream("POST", f"{url}/v1/chat/completions", json=LONG) as running:
            lines = first_token(running)
            waiting = {"model": MODEL, "messages": LONG["messages"], "options": {"num_predict": 100000}}
            with b.stream("POST", f"{url}/api/chat", json=waiting) as queued:
                assert queued.status_code == 200
                wait_for(lambda: gauge(url, "r1local_queue_depth") == 1)
                full = httpx.post(f"{url}/v1/chat/completions", json=SHORT, timeout=5)
                assert full.status_code == 503 and full.headers["retry-after"] == "2"
                assert full.json()["error"]["code"] == "overloaded"
                ollama_full = httpx.post(f"{url}/api/generate", json={"model": MODEL, "prompt": "x"}, timeout=5)
                assert ollama_full.status_code == 503 and "busy" in ollama_full.json()["error"]
                assert next(lines) is not None  # the running stream was never disturbed
    wait_for(lambda: gauge(url, "r1local_busy_slots") == 0 and gauge(url, "r1local_queue_depth") == 0)
    assert httpx.post(f"{url}/v1/chat/completions", json=SHORT).status_code == 200


def test_a_client_that_gives_up_on_a_whole_response_frees_its_slot(url):
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/chat/completions", json={**LONG, "stream": False}, timeout=0.5)
    wait_for(lambda: gauge(url, "r1local_busy_slots") == 0, seconds=2)


def test_a_slow_reader_does_not_hold_back_others(tiny_model, tmp_path):
    settings = replace(TEST_SETTINGS, models=(str(tiny_model),), parallel=2)
    with isolated_store(tmp_path), running_server(settings) as url, httpx.Client(timeout=30) as slow:
        unread = {**LONG, "max_tokens": 40, "temperature": 0}
        with slow.stream("POST", f"{url}/v1/chat/completions", json=unread) as stalled:
            assert stalled.status_code == 200  # nothing read from it yet
            quick = httpx.post(f"{url}/v1/chat/completions", json={**SHORT, "temperature": 0})
            assert quick.status_code == 200 and quick.json()["usage"]["completion_tokens"] == 4
            body = stalled.read().decode()
        assert body.rstrip().endswith("data: [DONE]") and '"finish_reason": "length"' in body
