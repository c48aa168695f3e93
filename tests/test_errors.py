"""One error table: every error class has its own exit code, HTTP status and code; `run -h`,
docs/api.md and the resident client's mapping back from a server's answer all come from it, so a
failure exits with the same code in-process and through a server."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from conftest import _load_script
from serving import TEST_SETTINGS, isolated_store, running_server
from typer.testing import CliRunner

import r1local.cli  # noqa: F401  (imports every module that raises, so every class is in the table)
import r1local.server  # noqa: F401
from r1local import client, errors
from r1local.cli import app
from r1local.client import ResidentServer
from r1local.engine.model import Model
from r1local.request import ChatRequest, prepare
from r1local.server.errors import error_response

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
runner = CliRunner()


def bare(cls: type[errors.R1Error]) -> errors.R1Error:
    """An instance of any error class, whatever its constructor takes."""
    error = cls.__new__(cls)
    errors.R1Error.__init__(error, f"a {cls.__name__}", "the next step")
    return error


def test_each_class_has_its_own_exit_code_and_code():
    table = errors.table()
    assert len(table) > 20 and all(cls.__module__ == "r1local.errors" for cls in table)  # one table, one place
    codes = [cls.exit_code for cls in table]
    assert len(set(codes)) == len(codes), codes
    assert not {0, errors.MAX_TOKENS_EXIT} & set(codes) and all(0 < code < 256 for code in codes)
    names = [cls.code for cls in table]
    assert len(set(names)) == len(names) and None not in names
    assert all(100 <= cls.http_status < 600 and cls.meaning for cls in table)


@pytest.mark.parametrize("cls", errors.table(), ids=lambda cls: cls.__name__)
def test_every_error_comes_back_from_a_server_as_itself(cls):
    """The server's own error response, read by the resident client, is the same class again."""
    sent = error_response("/v1/chat/completions", bare(cls))
    received = client._error(httpx.Response(sent.status_code, content=sent.body))
    assert type(received) is cls and received.exit_code == cls.exit_code
    assert sent.status_code == cls.http_status and "the next step" in received.message


def test_run_help_lists_every_exit_code():
    shown = runner.invoke(app, ["run", "-h"], env={"COLUMNS": "100"}).stdout
    assert "".join(errors.exit_codes_help().split()) in "".join(shown.split())  # however click wraps it


def test_the_docs_table_is_the_classes_table():
    text = DOC.read_text(encoding="utf-8")
    assert _load_script("error_table").with_table(text) == text, "run: python scripts/error_table.py"
    assert errors.markdown_table() in text


@pytest.fixture(scope="module")
def plain_server(plain_model, tmp_path_factory):
    with isolated_store(tmp_path_factory.mktemp("store")):
        with running_server(replace(TEST_SETTINGS, models=(str(plain_model),))) as url:
            yield url


def test_a_capability_refusal_is_the_same_error_both_ways(plain_server, plain_model):
    asked = ChatRequest([{"role": "user", "content": "hi"}], think=True)
    server = ResidentServer(plain_server)
    try:
        with pytest.raises(errors.Unsupported, match="does not support thinking") as remote:
            server.chat("tiny-plain", asked)
    finally:
        server.close()
    with Model.load(plain_model, n_ctx=256, n_threads=1) as model:
        with pytest.raises(errors.Unsupported, match="does not support thinking") as local:
            prepare(asked, model)
    assert remote.value.exit_code == local.value.exit_code == errors.Unsupported.exit_code


def test_context_overflow_exits_the_same_in_process_and_through_a_server(plain_server, plain_model, monkeypatch):
    monkeypatch.setenv("R1LOCAL_HOST", plain_server)
    long = "word " * 700  # past the server's 512 tokens and the in-process --ctx 512
    refused_before = http_400s(plain_server)
    through = runner.invoke(app, ["run", "tiny-plain", long])
    assert http_400s(plain_server) == refused_before + 1  # the server refused it
    here = runner.invoke(app, ["run", str(plain_model), long, "--local", "--ctx", "512", "--threads", "1"])
    assert through.exit_code == here.exit_code == errors.ContextOverflow.exit_code, (through.output, here.output)
    assert "context" in through.stderr and "context" in here.stderr


def http_400s(url: str) -> float:
    found = re.search(r'^r1local_http_errors_total\{status="400"\} (\S+)$', httpx.get(f"{url}/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0
