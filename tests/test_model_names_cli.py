"""show, inspect and rm take every name run takes; rm asks before removing several models."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import tiny_catalog
from typer.testing import CliRunner

from r1local.cli import app
from r1local.gguf_meta import read_gguf

REPO = "r1local-test/Tiny-R1-GGUF"
runner = CliRunner()


@pytest.fixture
def two_quants(hub, tiny_model, tmp_path, monkeypatch):  # noqa: F811
    """r1:tiny in two quantisations, both downloaded."""
    info = read_gguf(tiny_model)
    size = info.file_size / 1e9
    toml = tmp_path / "catalog.toml"
    toml.write_text(tiny_catalog(info, REPO, f"{{ F16 = {size}, Q8_0 = {size} }}"))
    monkeypatch.setenv("R1LOCAL_CATALOG", str(toml))
    data = tiny_model.read_bytes()
    hub.add(REPO, {"Tiny-R1-F16.gguf": data, "Tiny-R1-Q8_0.gguf": data})
    for name in ("r1:tiny-f16", "r1:tiny-q8_0"):
        assert runner.invoke(app, ["pull", name]).exit_code == 0
    return hub


def names() -> list[str]:
    return [m["name"] for m in json.loads(runner.invoke(app, ["list", "--json"]).stdout)]


@pytest.mark.parametrize("command", ["show", "inspect"])
def test_show_takes_the_names_run_takes(two_quants, command):
    for name in ("r1", "r1:tiny", "r1:tiny-q8_0", f"hf.co/{REPO}:Q8_0", f"{REPO}/Tiny-R1-F16.gguf"):
        result = runner.invoke(app, [command, name, "--json"])
        assert result.exit_code == 0, (name, result.output)
        facts = json.loads(result.stdout)
        assert facts["architecture"] == "qwen2"
        assert facts["capabilities"] == ["completion", "thinking", "tools", "embedding"]
    missing = runner.invoke(app, ["show", "r1:70b"])
    assert missing.exit_code == 3 and "r1:70b is not in the catalog" in missing.stderr
    template = runner.invoke(app, ["show", "r1:tiny", "--template"])
    assert "<｜Assistant｜>" in template.stdout


def test_rm_of_several_asks_and_yes_skips_the_question(two_quants):
    refused = runner.invoke(app, ["rm", "r1:tiny"])  # no terminal to ask on
    assert refused.exit_code == 2
    assert "r1:tiny matches 2 downloaded models: r1:tiny-f16 (42.9 MiB), r1:tiny-q8_0 (42.9 MiB)" in refused.stderr
    assert "--yes" in refused.stderr and len(names()) == 2

    one = runner.invoke(app, ["rm", "r1"])  # the model `run r1` would use
    assert one.exit_code == 0, one.output
    assert len(names()) == 1 and one.stdout.startswith("Removed r1:tiny-")

    assert runner.invoke(app, ["pull", "r1:tiny-f16"]).exit_code == 0
    assert runner.invoke(app, ["pull", "r1:tiny-q8_0"]).exit_code == 0
    both = runner.invoke(app, ["rm", "r1:tiny", "--yes"])
    assert both.exit_code == 0 and both.stdout.count("Removed") == 2 and names() == []


def test_rm_asks_on_a_terminal(two_quants):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-m", "r1local", "rm", "r1:tiny"], encoding="utf-8", timeout=60)
    child.expect_exact("Remove 2 models: r1:tiny-f16 (42.9 MiB), r1:tiny-q8_0 (42.9 MiB)? [y/N]:")
    child.sendline("n")
    child.expect("Nothing removed.")
    child.expect(pexpect.EOF)
    assert len(names()) == 2


def test_rm_never_deletes_a_file_of_yours(tiny_model, two_quants):
    result = runner.invoke(app, ["rm", str(tiny_model)])
    assert result.exit_code == 2 and "delete the file yourself" in result.stderr
    assert tiny_model.is_file()


def test_rm_unloads_the_model_from_the_running_server_first(two_quants, tmp_path, monkeypatch):
    from dataclasses import replace

    import httpx
    from serving import TEST_SETTINGS, running_server

    monkeypatch.setenv("R1LOCAL_HOME", str(tmp_path / "home"))  # the server's secret and the CLI's, one home
    with running_server(replace(TEST_SETTINGS, models=("r1:tiny-f16",))) as url:
        monkeypatch.setenv("R1LOCAL_HOST", url)
        assert [m["name"] for m in httpx.get(f"{url}/api/ps").json()["models"]] == ["r1:tiny-f16"]
        removed = runner.invoke(app, ["rm", "r1:tiny-f16"])
        assert removed.exit_code == 0, removed.output
        assert f"Unloaded r1:tiny-f16 from the server at {url} first." in removed.stderr
        assert httpx.get(f"{url}/api/ps").json()["models"] == [] and names() == ["r1:tiny-q8_0"]
