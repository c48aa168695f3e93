"""The HTTP surface without generation: errors in each dialect, API key, CORS, size limits."""

from __future__ import annotations

from dataclasses import replace

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from serving import TEST_SETTINGS, isolated_store, running_server

from r1local.server import create_app
from r1local.server.errors import BODY_NOT_AN_OBJECT

KEY = "s3cret-key"
CHAT = {"model": "tiny-r1-qwen", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    settings = replace(
        TEST_SETTINGS, models=(str(tiny_model),), max_body_bytes=64 * 1024, cors_origins=("http://app.example",)
    )
    with isolated_store(tmp_path_factory.mktemp("store")), running_server(settings) as base:
        yield base


@pytest.fixture(scope="module")
def keyed_url(tmp_path_factory):
    with isolated_store(tmp_path_factory.mktemp("store")), running_server(replace(TEST_SETTINGS, api_key=KEY)) as base:
        yield base


def openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_health_is_503_until_the_models_are_loaded():
    with TestClient(create_app(TEST_SETTINGS), base_url="http://127.0.0.1") as client:  # lifespan ran: nothing to load
        assert client.get("/health").status_code == 200
    unstarted = TestClient(create_app(TEST_SETTINGS), base_url="http://127.0.0.1")  # no lifespan: still "loading"
    response = unstarted.get("/health")
    assert response.status_code == 503 and response.json()["status"] == "loading"


@pytest.mark.parametrize(
    "body, status, param, words",
    [
        (b'{"model": "tiny-r1-qwen", "messages": [', 400, None, "not valid JSON"),
        ({**CHAT, "messages": "hi"}, 400, "messages", "valid list"),
        ({**CHAT, "temperature": "hot"}, 400, "temperature", "valid number"),
        ({**CHAT, "max_tokens": -5}, 400, "max_tokens", "greater than or equal to 1"),
        ({**CHAT, "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages.0.role", "'user'"),
        ({**CHAT, "n": 17}, 400, "n", "less than or equal to 16"),
        ({**CHAT, "tools": [{"type": "function"}]}, 400, "tools.0.function", "Missing required parameter"),
        ({**CHAT, "messages": [{"role": "user", "content": "word " * 600}]}, 400, None, "the context holds 512"),
        ({**CHAT, "model": "r1:7b"}, 404, None, "r1local pull"),
    ],
)
def test_bad_requests_get_openai_errors_never_500(url, body, status, param, words):
    kwargs = (
        {"content": body, "headers": {"content-type": "application/json"}}
        if isinstance(body, bytes)
        else {"json": body}
    )
    error = openai_error(httpx.post(f"{url}/v1/chat/completions", **kwargs), status)
    assert error["param"] == param and words in error["message"]
    assert httpx.get(f"{url}/health").status_code == 200


@pytest.mark.parametrize(
    "route", ["/v1/chat/completions", "/v1/completions", "/api/chat", "/api/generate", "/completion", "/tokenize"]
)
@pytest.mark.parametrize("body", [b"", b"null", b"[1]", b'"text"'])
def test_an_empty_body_is_one_clear_line(url, route, body):
    response = httpx.post(f"{url}{route}", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    message = error if isinstance(error, str) else error["message"]
    assert (
        message
        == BODY_NOT_AN_OBJECT
        == ("The request body is empty or not a JSON object; send a JSON object with the request's parameters.")
    )


def test_ollama_routes_answer_in_ollamas_error_shape(url):
    response = httpx.post(f"{url}/api/chat", json={"model": "nobody/nothing", "messages": []})
    assert response.status_code == 404 and isinstance(response.json()["error"], str)
    response = httpx.post(
        f"{url}/api/generate", json={"model": "tiny-r1-qwen", "prompt": "x", "options": {"top_k": -1}}
    )
    assert response.status_code == 400 and response.json()["error"].startswith("options.top_k: ")


def test_oversized_bodies_are_413_whether_declared_or_streamed(url):
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 70_000}]}
    error = openai_error(httpx.post(f"{url}/v1/chat/completions", json=big), 413)
    assert error["code"] == "request_too_large"

    def chunks():  # no Content-Length: the limit is counted as the body arrives
        for _ in range(20):
            yield b" " * 8192

    response = httpx.post(f"{url}/api/chat", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "limit" in response.json()["error"]


def test_absurd_max_tokens_is_clamped_to_the_context(url):
    long_prompt = [{"role": "user", "content": "word " * 480}]  # leaves a few tokens of the 512
    response = httpx.post(
        f"{url}/v1/chat/completions", json={**CHAT, "messages": long_prompt, "max_tokens": 10**30, "temperature": 0}
    )
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert response.json()["choices"][0]["finish_reason"] == "length" and usage["total_tokens"] <= 512


def test_unknown_route_and_method(url):
    openai_error(httpx.get(f"{url}/v1/nothing"), 404)
    assert httpx.get(f"{url}/v1/chat/completions").status_code == 405


def test_cors_preflight_only_for_listed_origins(url, keyed_url):
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = httpx.options(f"{url}/v1/chat/completions", headers={"Origin": "http://app.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://app.example"
    other = httpx.options(f"{url}/v1/chat/completions", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers
    # a server started without --cors-origin sends no CORS headers at all
    plain = httpx.get(f"{keyed_url}/health", headers={"Origin": "http://app.example"})
    assert "access-control-allow-origin" not in plain.headers


def test_api_key_is_required_everywhere_but_health(keyed_url):
    assert httpx.get(f"{keyed_url}/health").status_code == 200
    for path in ("/v1/models", "/api/tags", "/api/ps", "/api/version", "/metrics"):
        missing = httpx.get(f"{keyed_url}{path}")
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = httpx.get(f"{keyed_url}{path}", headers={"Authorization": f"Bearer {KEY}x"})
        assert wrong.status_code == 401
        assert httpx.get(f"{keyed_url}{path}", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert openai_error(httpx.get(f"{keyed_url}/v1/models"), 401)["code"] == "invalid_api_key"
    assert "API key" in httpx.get(f"{keyed_url}/api/tags").json()["error"]


def test_real_clients_send_the_key(keyed_url):
    import ollama

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{keyed_url}/v1", api_key="wrong").models.list()
    assert openai.OpenAI(base_url=f"{keyed_url}/v1", api_key=KEY).models.list().data == []
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=keyed_url).list()
    assert refused.value.status_code == 401
    assert ollama.Client(host=keyed_url, headers={"Authorization": f"Bearer {KEY}"}).list().models == []


def test_metrics_count_errors_and_tokens(url):
    httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "n": 99})
    httpx.post(f"{url}/v1/chat/completions", json=CHAT)
    httpx.post(f"{url}/v1/chat/completions", json=CHAT)  # the same prompt: its cells are reused
    text = httpx.get(f"{url}/metrics").text
    cached = next(line for line in text.splitlines() if line.startswith("r1local_prompt_tokens_cached_total{"))
    assert float(cached.split()[-1]) > 0
    assert 'r1local_http_errors_total{status="400"}' in text
    assert 'r1local_completion_tokens_total{model="tiny-r1-qwen"}' in text
    assert 'r1local_busy_slots{model="tiny-r1-qwen"} 0.0' in text
    assert 'r1local_queue_depth{model="tiny-r1-qwen"} 0.0' in text
