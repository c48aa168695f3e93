"""Web pages cannot drive the local server: a rebinding page's Host name, a foreign Origin and a
browser's non-JSON body (no CORS preflight) are refused before any route runs."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server

GENERATE = b'{"model": "nobody/nothing", "prompt": "hi"}'


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    settings = replace(TEST_SETTINGS, allowed_hosts=("mybox.lan",), cors_origins=("http://app.example",))
    with isolated_store(tmp_path_factory.mktemp("store")), running_server(settings) as base:
        yield base


def port(url: str) -> str:
    return url.rsplit(":", 1)[1]


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com.", "localhost.evil.com", "127.0.0.1.nip.io"])
def test_a_rebound_host_name_is_refused(url, host):
    for method, path in (("GET", "/v1/models"), ("POST", "/api/generate"), ("POST", "/api/pull"), ("GET", "/")):
        response = httpx.request(
            method,
            f"{url}{path}",
            headers={"Host": f"{host}:{port(url)}"},
            content=GENERATE if method == "POST" else None,
        )
        assert response.status_code == 403, (host, path)
        error = response.json()["error"]
        message = error if path.startswith("/api/") else error["message"]
        assert "host name" in message and "--allowed-host" in message


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "[::1]", "app.localhost", "mybox.lan", "MYBOX.LAN", "10.1.2.3"]
)
def test_addresses_loopback_names_and_allowed_names_are_served(url, host):
    response = httpx.get(f"{url}/api/version", headers={"Host": f"{host}:{port(url)}"})
    assert response.status_code == 200, host


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_a_cross_site_simple_request_cannot_generate_or_pull(url, content_type):
    # what a page on any site can send without a CORS preflight
    for path in ("/api/generate", "/api/pull", "/v1/chat/completions", "/v1/completions"):
        response = httpx.post(
            f"{url}{path}",
            content=GENERATE,
            headers={
                "Content-Type": content_type,
                "Origin": "https://evil.example",
                "Sec-Fetch-Mode": "no-cors",
                "Sec-Fetch-Site": "cross-site",
            },
        )
        assert response.status_code == 403, path
    # a sandboxed page sends Origin: null
    response = httpx.post(f"{url}/api/generate", content=GENERATE, headers={"Origin": "null"})
    assert response.status_code == 403


def test_a_browser_body_must_be_declared_json(url):
    same_site = {"Origin": url, "Sec-Fetch-Mode": "cors"}
    refused = httpx.post(f"{url}/api/generate", content=GENERATE, headers={**same_site, "Content-Type": "text/plain"})
    assert refused.status_code == 415 and "application/json" in refused.json()["error"]
    no_origin = httpx.post(
        f"{url}/v1/completions", content=GENERATE, headers={"Content-Type": "text/plain", "Sec-Fetch-Mode": "no-cors"}
    )
    assert no_origin.status_code == 415 and no_origin.json()["error"]["code"] == "unsupported_media_type"
    # the server's own page and an origin allowed with --cors-origin reach the route (404: no such model)
    for origin in (url, "http://app.example"):
        reached = httpx.post(
            f"{url}/api/generate", content=GENERATE, headers={"Origin": origin, "Content-Type": "application/json"}
        )
        assert reached.status_code == 404, origin


def test_clients_that_are_not_browsers_keep_working(url):
    # curl -d declares a form body and sends no Origin: read as JSON, as Ollama does
    response = httpx.post(
        f"{url}/api/generate", content=GENERATE, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 404 and "nobody/nothing" in response.json()["error"]
