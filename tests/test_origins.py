"""Web page origins: Ollama's defaults (local pages on any port, desktop apps) reach the API with
CORS headers, wildcard patterns from --cors-origin and R1LOCAL_ORIGINS widen it, other sites stay
refused."""

from __future__ import annotations

from dataclasses import replace

import httpx
import ollama
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server

from r1local import config
from r1local.server.origins import OriginPolicy


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    settings = replace(TEST_SETTINGS, cors_origins=("https://*.example.com",))
    with isolated_store(tmp_path_factory.mktemp("store")), running_server(settings) as base:
        yield base


@pytest.mark.parametrize(
    "origin",
    [
        "tauri://localhost",
        "http://localhost:5173",
        "http://127.0.0.1:3000",
        "app://obsidian.md",
        "vscode-webview://1a2b3c",
        "https://chat.example.com",
    ],
)
def test_ollamas_default_origins_and_wildcards_are_allowed(url, origin):
    client = ollama.Client(host=url, headers={"Origin": origin})
    assert isinstance(client.list().models, list)  # the real client's request gets through
    response = httpx.get(f"{url}/api/tags", headers={"Origin": origin})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == origin
    preflight = httpx.options(
        f"{url}/api/chat",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://localhost.evil.example",
        "http://localhost:5173.evil.example",
        "https://example.com.evil.example",
        "null",
    ],
)
def test_other_sites_are_still_refused(url, origin):
    client = ollama.Client(host=url, headers={"Origin": origin})
    with pytest.raises(ollama.ResponseError) as refused:
        client.list()
    assert refused.value.status_code == 403
    preflight = httpx.options(f"{url}/api/chat", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_the_origins_variable_adds_patterns(monkeypatch):
    monkeypatch.setenv("R1LOCAL_ORIGINS", "https://*.corp.lan, http://tool.lan:*")
    policy = OriginPolicy(config.allowed_origins())
    assert policy.allows("https://wiki.corp.lan") and policy.allows("http://tool.lan:8080")
    assert not policy.allows("https://corp.lan.evil.example") and not policy.allows("http://tool.lan:80/x")
