"""A path and its served name are the same model: with `r1local serve FILE` running, run, show, embed
and stop by the file's path (absolute or relative), by its stem, or with load options all use the
server, and no model loads in the command's own process."""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import replace

import httpx
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server
from typer.testing import CliRunner

from r1local.cli import app, backend, embed

FAST = ["--temperature", "0", "--max-tokens", "6", "--no-think", "--json"]
runner = CliRunner()


def requests_served(url: str) -> float:
    """The server's count of finished generation requests (every model, dialect and outcome)."""
    text = httpx.get(f"{url}/metrics").text
    return sum(float(v) for v in re.findall(r"^r1local_requests_total\{[^}]*\} (\S+)$", text, re.MULTILINE))


def wait_unloaded(url: str) -> None:
    deadline = time.monotonic() + 15
    while httpx.get(f"{url}/api/ps").json()["models"]:
        assert time.monotonic() < deadline, "the model stayed loaded"
        time.sleep(0.05)


@pytest.fixture
def server(tiny_model, tmp_path_factory, monkeypatch):
    """A foreground server holding the tiny model; the command line finds it through R1LOCAL_HOST
    and may not load any model itself."""
    with isolated_store(tmp_path_factory.mktemp("store")):
        with running_server(replace(TEST_SETTINGS, models=(str(tiny_model),))) as url:
            monkeypatch.setenv("R1LOCAL_HOST", url)

            def no_load_here(*args, **kwargs):
                raise AssertionError("a model was loaded in the command's own process")

            for module in (backend, embed):  # every way a command loads a model in its own process
                monkeypatch.setattr(module, "open_model", no_load_here)
            yield url


@pytest.mark.parametrize("how", ["absolute path", "relative path", "stem", "stem with --threads"])
def test_run_by_path_or_stem_uses_the_server(server, tiny_model, monkeypatch, how):
    monkeypatch.chdir(tiny_model.parent)
    name = {"absolute path": str(tiny_model), "relative path": f"./{tiny_model.name}"}.get(how, tiny_model.stem)
    extra = ["--threads", "1"] if how == "stem with --threads" else []
    before = requests_served(server)
    result = runner.invoke(app, ["run", name, "hello", *FAST, *extra])
    assert result.exit_code == 20, result.output  # cut at --max-tokens 6
    assert json.loads(result.stdout)["engine"] == "r1local serve"
    assert requests_served(server) == before + 1
    if extra:
        assert "--threads not applied" in result.stderr and "--local" in result.stderr


def test_chat_by_path_uses_the_server(server, tiny_model):
    before = requests_served(server)
    result = runner.invoke(app, ["chat", str(tiny_model), "--no-think", "--max-tokens", "4"], input="hi\n/bye\n")
    assert result.exit_code == 0, result.output
    assert f"ready ({server})" in result.stderr and requests_served(server) == before + 1


def test_show_and_embed_ask_the_server(server, tiny_model):
    for name in (str(tiny_model), tiny_model.stem):
        shown = runner.invoke(app, ["show", name, "--json"])
        assert shown.exit_code == 0, shown.output
        facts = json.loads(shown.stdout)
        assert facts["served_by"] == server and facts["architecture"] == "qwen2"
        assert facts["context_length"] == 512  # the context this server gives, not the trained one
        assert facts["parameters"] > 0 and "completion" in facts["capabilities"]
    template = runner.invoke(app, ["show", tiny_model.stem, "--template"])
    assert "<｜Assistant｜>" in template.stdout

    embedded = runner.invoke(app, ["embed", str(tiny_model), "first text", "second text"])
    assert embedded.exit_code == 0, embedded.output
    vectors = [json.loads(line) for line in embedded.stdout.splitlines()]
    expected = httpx.post(
        f"{server}/v1/embeddings", json={"model": tiny_model.stem, "input": ["first text", "second text"]}
    ).json()
    assert vectors == [[round(x, 7) for x in item["embedding"]] for item in expected["data"]]


def test_stop_by_path_unloads_the_served_model(server, tiny_model):
    assert runner.invoke(app, ["stop", str(tiny_model.parent / "missing.gguf")]).exit_code == 2  # not loaded
    stopped = runner.invoke(app, ["stop", str(tiny_model)])
    assert stopped.exit_code == 0 and f"Unloaded {tiny_model}." in stopped.stdout
    wait_unloaded(server)
    # the next request by path loads it again, in the server, under its served name
    assert runner.invoke(app, ["run", str(tiny_model), "hi", *FAST]).exit_code == 20
    assert [m["name"] for m in httpx.get(f"{server}/api/ps").json()["models"]] == [tiny_model.stem]


def test_a_path_the_server_does_not_hold_is_never_opened_by_it(server, tiny_model, tmp_path):
    copy = tmp_path / tiny_model.name  # the same bytes, another file: the server must not open it
    copy.write_bytes(tiny_model.read_bytes())
    reply = httpx.post(f"{server}/api/show", json={"model": str(copy)})
    assert reply.status_code == 404 and "serves only the files it was started with" in reply.json()["error"]
    assert httpx.post(f"{server}/api/show", json={"model": str(tiny_model)}).status_code == 200


def r1local(*args: str, env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "r1local", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_detached_server_is_found_by_path_and_stem(tiny_model, tmp_path):
    """The issue's case: `serve FILE --detach --port P` and nothing else set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("R1LOCAL_")}
    env |= {"R1LOCAL_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": str(tmp_path / "hf"), "COLUMNS": "100"}
    cli = functools.partial(r1local, env=env, cwd=tiny_model.parent)  # the file by its relative path too
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = cli("serve", tiny_model.name, "--detach", "--port", str(port), "--ctx", "512", "--threads", "1")
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/health").status_code != 200:
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.1)
        before = requests_served(url)
        for name, extra in ((tiny_model.name, []), (str(tiny_model), []), (tiny_model.stem, ["--threads", "1"])):
            result = cli("run", name, "hi", *FAST, *extra)
            assert result.returncode == 20, result.stderr
            assert json.loads(result.stdout)["engine"] == "r1local serve", name
        assert requests_served(url) == before + 3
        shown = cli("show", tiny_model.name, "--json")
        assert json.loads(shown.stdout)["served_by"] == url, shown.stderr
        assert len(cli("embed", tiny_model.name, "a text").stdout.splitlines()) == 1
        assert cli("ps").stdout.splitlines()[1].split()[0] == tiny_model.stem
        stopped = cli("stop", tiny_model.name)
        assert stopped.returncode == 0, stopped.stderr
        wait_unloaded(url)
    finally:
        assert cli("stop").returncode == 0
