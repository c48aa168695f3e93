"""The served OpenAPI document says what the server sends, and a short run of
scripts/reliability.py (fuzzing, soak, disconnect storm, queue overflow) passes."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from conftest import _load_script
from serving import TEST_SETTINGS, isolated_store, running_server

reliability = _load_script("reliability")


@pytest.fixture(scope="module")
def document(tiny_model, tmp_path_factory) -> dict:
    with isolated_store(tmp_path_factory.mktemp("store")), running_server(replace(TEST_SETTINGS)) as url:
        return httpx.get(f"{url}/openapi.json").json()


@pytest.mark.parametrize(
    "method, path, statuses, error, streamed",
    [
        (
            "post",
            "/v1/chat/completions",
            {"200", "400", "401", "403", "404", "413", "415", "422", "503", "507"},
            "OpenAIError",
            "text/event-stream",
        ),
        (
            "post",
            "/v1/completions",
            {"200", "400", "401", "403", "404", "413", "415", "422", "503", "507"},
            "OpenAIError",
            "text/event-stream",
        ),
        (
            "post",
            "/api/chat",
            {"200", "400", "401", "403", "404", "413", "415", "422", "503", "507"},
            "OllamaError",
            "application/x-ndjson",
        ),
        (
            "post",
            "/api/pull",
            {"200", "400", "401", "403", "404", "413", "415", "502", "503", "507"},
            "OllamaError",
            "application/x-ndjson",
        ),
        ("get", "/health", {"200", "403", "503"}, "OpenAIError", None),
    ],
)
def test_the_openapi_document_lists_what_is_sent(document, method, path, statuses, error, streamed):
    responses = document["paths"][path][method]["responses"]
    assert set(responses) == statuses  # 400 where FastAPI would say 422 (a body this server never sends)
    for status in statuses - {"200", "503" if path == "/health" else "200"}:
        assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith(error)
    if streamed:
        assert set(responses["200"]["content"]) == {"application/json", streamed}
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_text_routes_are_documented_as_text(document):
    assert list(document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == [
        "text/plain; version=0.0.4; charset=utf-8"
    ]
    assert list(document["paths"]["/"]["get"]["responses"]["200"]["content"]) == ["text/plain; charset=utf-8"]


def test_a_short_reliability_run_passes(tiny_model):
    rows = reliability.run(
        str(tiny_model),
        fuzz_examples=4,
        fuzz_seconds=20,
        soak_seconds=3,
        soak_clients=2,
        storm_clients=8,
        ctx=1024,
        log=lambda line: None,
    )
    assert [r.check.split(" (")[0] for r in rows] == ["fuzzing", "soak", "disconnect storm", "queue overflow"]
    assert all(r.ok for r in rows), reliability.table(rows)
