"""Requests that once took gigabytes, stalled everyone or broke a route for every client: each
field has a bound, slow work stays off the event loop, odd text is text."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import psutil
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server

MODEL = "tiny-r1-qwen"
FOREVER = "2318-01-01T00:00:00Z"
SAY = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    settings = replace(TEST_SETTINGS, models=(str(tiny_model),), max_queue=8)
    with isolated_store(tmp_path_factory.mktemp("store")), running_server(settings) as base:
        yield base


class PeakRSS:
    """The highest resident memory of this process (the server runs in it) while the block runs."""

    def __enter__(self) -> PeakRSS:
        self.process, self.peak, self._done = psutil.Process(), 0, threading.Event()
        self.start = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


def test_a_huge_penalty_window_takes_no_memory(url):
    # llama.cpp allocates 4 bytes per unit of repeat_last_n when a request is submitted, queued
    # ones included: 2^26 once took 256 MiB a request. The window is clamped to the context.
    body = {
        "model": MODEL,
        "prompt": "Hi",
        "stream": False,
        "options": {"repeat_last_n": 2**26, "repeat_penalty": 1.1, "num_predict": 4},
    }
    with PeakRSS() as rss, ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: httpx.post(f"{url}/api/generate", json=body, timeout=60), range(4)))
    assert [r.status_code for r in replies] == [200] * 4, replies[0].text
    assert rss.growth < 64 * 2**20, f"grew by {rss.growth / 2**20:.0f} MiB"


CHAT = {"model": MODEL, "messages": SAY, "max_tokens": 2}
TOOL = {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
GENERATE = {"model": MODEL, "prompt": "Hi", "stream": False}


@pytest.mark.parametrize(
    "route, body, field",
    [
        ("/v1/chat/completions", {**CHAT, "top_k": 2**32}, "top_k"),  # llama.cpp's int32 wrapped it to 0
        ("/v1/chat/completions", {**CHAT, "stop": ["x"] * 17}, "stop"),
        ("/v1/chat/completions", {**CHAT, "stop": "x" * 1001}, "stop"),
        ("/v1/chat/completions", {**CHAT, "seed": 2**64}, "seed"),
        ("/v1/chat/completions", {**CHAT, "messages": SAY * 4097}, "messages"),
        ("/v1/chat/completions", {**CHAT, "metadata": {str(i): "" for i in range(17)}}, "metadata"),
        ("/v1/completions", {"model": MODEL, "prompt": "Hi", "top_k": 2**31}, "top_k"),
        ("/api/generate", {**GENERATE, "options": {"top_k": 2**32}}, "options.top_k"),
        ("/api/generate", {**GENERATE, "options": {"stop": ["x"] * 5000}}, "options.stop"),
        ("/api/generate", {**GENERATE, "options": {"repeat_last_n": 2**31}}, "options.repeat_last_n"),
        ("/api/generate", {**GENERATE, "options": {"num_ctx": 2**70}}, "options.num_ctx"),
        ("/api/chat", {"model": MODEL, "messages": SAY * 4097, "stream": False}, "messages"),
        ("/v1/chat/completions", {**CHAT, "n": 17}, "n"),
        ("/v1/chat/completions", {**CHAT, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ("/v1/chat/completions", {**CHAT, "reasoning_budget_tokens": 2**31}, "reasoning_budget_tokens"),
        ("/v1/chat/completions", {**CHAT, "tools": [TOOL] * 129}, "tools"),
        # a tool too large for a grammar is offered unconstrained under "auto"; forcing it needs the grammar
        (
            "/v1/chat/completions",
            {
                **CHAT,
                "tool_choice": "required",
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "pick",
                            "parameters": {"type": "string", "enum": [str(i) for i in range(65)]},
                        },
                    }
                ],
            },
            "tools",
        ),
        ("/v1/chat/completions", {**CHAT, "grammar": "root ::= " + '"x" ' * 20000}, "grammar"),
        (
            "/v1/chat/completions",
            {**CHAT, "chat_template_kwargs": {str(i): 1 for i in range(17)}},
            "chat_template_kwargs",
        ),
        ("/v1/chat/completions", {**CHAT, "messages": [{"role": "assistant", "tool_calls": [{}] * 129}]}, "tool_calls"),
        ("/v1/completions", {"model": MODEL, "prompt": "Hi", "logprobs": 6}, "logprobs"),
        ("/v1/embeddings", {"model": MODEL, "input": ["x"] * 2049}, "input"),
        ("/v1/embeddings", {"model": MODEL, "input": "x", "dimensions": 2**31}, "dimensions"),
        ("/api/chat", {"model": MODEL, "messages": SAY, "options": {"think_budget": -1}}, "options.think_budget"),
        ("/completion", {"model": MODEL, "prompt": "Hi", "seed": 2**64}, "seed"),
    ],
)
def test_every_field_has_a_bound(url, route, body, field):
    response = httpx.post(f"{url}{route}", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert field in (error if isinstance(error, str) else error["param"])


def test_an_unknown_field_is_ignored_but_a_known_one_still_bounded(url):
    ignored = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "vendor_knob": [1] * 100}, timeout=60)
    assert ignored.status_code == 200, ignored.text
    refused = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "vendor_knob": 1, "n": 17})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "n"


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/api/chat"])
def test_deep_nesting_is_a_400_not_a_recursion_error(url, route):
    schema = '{"a": ' * 500 + "1" + "}" * 500  # once a RecursionError, a 500
    body = (
        f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "Hi"}}], "stream": false, '
        f'"response_format": {{"type": "json_schema", "json_schema": {{"name": "a", "schema": {schema}}}}}}}'
    )
    if route == "/api/chat":
        body = f'{{"model": "{MODEL}", "messages": [], "format": {schema}}}'
    response = httpx.post(f"{url}{route}", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "64 levels" in response.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_out_of_bounds(url, literal):
    body = f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "Hi"}}], "temperature": {literal}}}'
    response = httpx.post(f"{url}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "temperature"


@pytest.mark.parametrize("keep_alive", [1e12, "inf", 1e300, "1e300"])
def test_an_endless_keep_alive_means_forever_and_ps_keeps_answering(url, keep_alive):
    response = httpx.post(f"{url}/api/generate", json={"model": MODEL, "keep_alive": keep_alive})
    assert response.status_code == 200, response.text
    ps = httpx.get(f"{url}/api/ps")
    assert ps.status_code == 200, ps.text
    assert [m["expires_at"] for m in ps.json()["models"]] == [FOREVER]


def test_a_nan_keep_alive_is_refused(url):
    response = httpx.post(f"{url}/api/generate", json={"model": MODEL, "keep_alive": "nan"})
    assert response.status_code == 400 and "keep_alive" in response.json()["error"]
    assert httpx.get(f"{url}/api/ps").status_code == 200


@pytest.mark.parametrize(
    "route, template",
    [
        ("/v1/chat/completions", '{"model": "M", "messages": [{"role": "user", "content": "a@b"}], "max_tokens": 2}'),
        ("/v1/completions", '{"model": "M", "prompt": "a@b", "max_tokens": 2}'),
        (
            "/api/chat",
            '{"model": "M", "messages": [{"role": "user", "content": "a@b"}], "stream": false, '
            '"options": {"num_predict": 2}}',
        ),
        (
            "/api/generate",
            '{"model": "M", "prompt": "a@b", "stream": false, "options": {"num_predict": 2, "stop": ["@"]}}',
        ),
        # a name the server does not hold is its default model, as llama-server answers it: keep the answer short
        ("/v1/chat/completions", '{"model": "M@", "messages": [{"role": "user", "content": "a"}], "max_tokens": 2}'),
    ],
)
def test_a_lone_surrogate_is_replaced_not_a_500(url, route, template):
    body = template.replace('"M', f'"{MODEL}').replace("@", "\\ud800")  # valid JSON, not valid text
    with httpx.Client(base_url=url) as client:  # one connection: it must serve the next request too
        response = client.post(route, content=body, headers={"content-type": "application/json"})
        assert response.status_code in (200, 404), response.text
        assert client.get("/health").status_code == 200


def test_models_list_times_not_paths(url):
    (model,) = httpx.get(f"{url}/v1/models").json()["data"]
    assert isinstance(model["created"], int) and 1e9 < model["created"] <= time.time()


def test_a_model_that_failed_to_load_is_unhealthy_and_errors_name_no_folders(tiny_model, tmp_path):
    cut = tmp_path / "cut-short.gguf"
    cut.write_bytes(tiny_model.read_bytes()[: tiny_model.stat().st_size // 2])
    settings = replace(TEST_SETTINGS, models=(str(cut),))
    with isolated_store(tmp_path), running_server(settings, ready=False) as url:
        deadline = time.monotonic() + 30
        while (health := httpx.get(f"{url}/health")).json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert health.status_code == 503 and health.json()["status"] == "error"
        assert "cut-short" in health.json()["failed"] and str(tmp_path) not in health.text
        reply = httpx.post(f"{url}/v1/chat/completions", json={"model": "cut-short", "messages": SAY})
        assert reply.status_code == 422 and "cut-short.gguf" in reply.json()["error"]["message"]
        assert str(tmp_path) not in reply.text


def latency(url: str, body: dict, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.monotonic()
        assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300).status_code == 200
        times.append(time.monotonic() - started)
    return sorted(times)[runs // 2]


def test_a_huge_enum_cannot_stall_an_unrelated_request(url):
    # a 20,000-value enum once became a grammar that every step of the shared batch checked against
    # the whole vocabulary: an unrelated 8-token request took 31 s instead of 0.17 s
    unrelated = {**CHAT, "max_tokens": 8, "temperature": 0}
    solo = latency(url, unrelated)
    schema = {"type": "object", "properties": {"pick": {"enum": [f"value-{i}" for i in range(20_000)]}}}
    heavy = {
        **CHAT,
        "max_tokens": 64,
        "response_format": {"type": "json_schema", "json_schema": {"name": "pick", "schema": schema}},
    }
    with ThreadPoolExecutor(2) as pool:
        admitted = [pool.submit(httpx.post, f"{url}/v1/chat/completions", json=heavy, timeout=300) for _ in range(2)]
        time.sleep(0.05)
        beside = latency(url, unrelated)
        replies = [future.result() for future in admitted]
    assert [r.status_code for r in replies] == [400, 400]
    assert "too large" in replies[0].json()["error"]["message"]
    assert beside < 3 * solo + 1.0, f"{beside:.2f} s beside the heavy requests, {solo:.2f} s alone"
