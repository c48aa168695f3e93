"""pull / list / rm / models and `resolve` end to end: the CLI, the real huggingface_hub client,
the loopback test hub serving the tiny R1 test model under a catalog name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_catalog
from testhub import TOKEN, Fault
from typer.testing import CliRunner

from r1local import config, hardware, resolve, store
from r1local.cli import app
from r1local.errors import AuthRequired, InsufficientDisk, ModelNotFound, OfflineError, StorageError, UsageError
from r1local.gguf_meta import read_gguf
from r1local.hardware.model import CPU, GPU, GiB, Hardware, Memory, Verdict
from r1local.names import ModelAddress

REPO = "r1local-test/Tiny-R1-GGUF"
FILE = "Tiny-R1-F16.gguf"
runner = CliRunner()


@pytest.fixture
def tiny_hub(hub, tiny_model, tmp_path, monkeypatch):  # noqa: F811
    """The test hub serving the tiny model as r1:tiny-f16, in a catalog with a 1.5B (listed, not
    served) and a 70B that fits nowhere small."""
    info = read_gguf(tiny_model)
    toml = tmp_path / "catalog.toml"
    toml.write_text(
        tiny_catalog(info, REPO, f"{{ F16 = {info.file_size / 1e9} }}")
        + """
[[model]]
name = "1.5b"
file_prefix = "Mid"
repo = "r1local-test/Mid-GGUF"
arch = "qwen2"
params_b = 1.78
layers = 28
embedding = 1536
heads = 12
kv_heads = 2
head_dim = 128
vocab = 151936
context = 131072
quants = { Q4_K_M = 1.12 }

[[model]]
name = "70b"
file_prefix = "Big"
repo = "r1local-test/Big-GGUF"
arch = "llama"
params_b = 70.55
layers = 80
embedding = 8192
heads = 64
kv_heads = 8
head_dim = 128
vocab = 128256
context = 131072
quants = { Q4_K_M = 42.52 }
"""
    )
    monkeypatch.setenv("R1LOCAL_CATALOG", str(toml))
    hub.add(REPO, {FILE: tiny_model.read_bytes()})
    return hub


def small_pc() -> Hardware:
    """A laptop with 16 GB of RAM and a 6 GB GPU: the tiny model fits, a 70B does not."""
    return Hardware(
        "Linux",
        "6.8",
        CPU("test cpu", "x86_64", 8, 16, features=["AVX2"]),
        Memory(16 * GiB, 12 * GiB),
        gpus=[GPU("RTX 3060 Laptop", "nvidia", False, 6 * GiB, 6 * GiB)],
        verdicts=[Verdict("RTX 3060 Laptop", "gpu", True, "used by this build", "")],
    )


def cli(*args: str):
    return runner.invoke(app, list(args))


def test_pull_list_rm(tiny_hub, tiny_model):
    result = cli("pull", "r1:tiny")
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path.read_bytes() == tiny_model.read_bytes()
    assert "r1:tiny-f16 is already downloaded" in cli("pull", "r1:tiny-f16").stderr

    listed = json.loads(cli("list", "--json").stdout)
    assert [(m["name"], m["quant"], m["size"], m["path"]) for m in listed] == [
        ("r1:tiny-f16", "F16", tiny_model.stat().st_size, str(path))
    ]
    assert listed[0]["last_used"] is None
    resolve.resolve(ModelAddress.parse("r1:tiny", allow_paths=False))
    assert json.loads(cli("list", "--json").stdout)[0]["last_used"] > time.time() - 60
    assert "r1:tiny-f16" in cli("list").stdout

    result = cli("rm", "r1:tiny")
    assert result.exit_code == 0 and "Removed r1:tiny-f16 (42.9 MiB freed)" in result.stdout
    assert json.loads(cli("list", "--json").stdout) == []
    assert not any(config.hf_cache().rglob("*.gguf"))


def test_hub_references_pull_by_quant_and_by_file(tiny_hub):
    result = cli("pull", f"hf.co/{REPO}:F16")
    assert result.exit_code == 0, result.output
    assert cli("pull", f"{REPO}/{FILE}").stderr.count("already downloaded") == 1
    assert resolve.installed_matches(ModelAddress.parse(f"hf.co/{REPO}"))[0].name == "r1:tiny-f16"


def test_failures_are_one_clear_line_with_an_exit_code(tiny_hub, monkeypatch):
    tiny_hub.add("meta/Gated-GGUF", {"Gated-Q4_K_M.gguf": b"GGUF" * 1000}, gated=True)
    cases = [
        (["pull", "r1:9b"], 3, "r1:9b is not in the catalog"),
        (["pull", "r1:tiny-q2_k"], 3, "r1:tiny has no Q2_K file"),
        (["pull", "nobody/Nothing/x.gguf"], 3, "nobody/Nothing was not found on the Hub"),
        (["pull", f"{REPO}/Tiny-R1-Q2_K.gguf"], 3, "Tiny-R1-Q2_K.gguf is not in r1local-test/Tiny-R1-GGUF"),
        (["pull", "hf.co/meta/Gated-GGUF:Q4_K_M"], AuthRequired.exit_code, "meta/Gated-GGUF is gated"),
        (["rm", "r1:tiny"], 2, "r1:tiny is not downloaded"),
    ]
    for args, code, message in cases:
        result = cli(*args)
        assert (result.exit_code, message) == (code, message) and message in result.stderr, result.stderr
    assert "HF_TOKEN" in cli("pull", "hf.co/meta/Gated-GGUF:Q4_K_M").stderr
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert cli("pull", "hf.co/meta/Gated-GGUF:Q4_K_M").exit_code == 0


def test_corrupt_download_fails_cleanly(tiny_hub):
    tiny_hub.repos[REPO].faults[FILE] = Fault(corrupt=True)
    result = cli("pull", "r1:tiny")
    assert result.exit_code == 8 and "failed verification" in result.stderr
    assert json.loads(cli("list", "--json").stdout) == []


def test_resolve_asks_before_downloading(tiny_hub, tmp_path):
    with pytest.raises(ModelNotFound, match="r1:tiny-f16 is not downloaded") as info:
        resolve.resolve(ModelAddress.parse("r1:tiny", allow_paths=True))
    assert info.value.hint == "Download it first: r1local pull r1:tiny-f16"
    questions: list[str] = []
    with pytest.raises(UsageError, match="was not downloaded"):
        resolve.resolve(
            ModelAddress.parse("r1:tiny", allow_paths=True), pull_if_missing=True, confirm=lambda q: questions.append(q)
        )
    assert questions == ["r1:tiny-f16 is not downloaded yet. Download it now (42.9 MiB)?"]
    assert tiny_hub.gets(FILE) == []
    path = resolve.resolve(
        ModelAddress.parse("r1:tiny", allow_paths=True), pull_if_missing=True, confirm=lambda q: True
    )
    assert path.name == FILE and len(tiny_hub.gets(FILE)) == 1
    # a path is a model only where paths are allowed
    assert resolve.resolve(ModelAddress.parse(str(path), allow_paths=True)) == path.resolve()
    with pytest.raises(ModelNotFound):
        resolve.resolve(ModelAddress.parse(str(path), allow_paths=False))


def test_offline_present_model_never_touches_the_network(tiny_hub, monkeypatch):
    assert cli("pull", "r1:tiny").exit_code == 0
    seen = len(tiny_hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve.resolve(ModelAddress.parse("r1:tiny", allow_paths=False)).is_file()
    assert (
        resolve.resolve(ModelAddress.parse("r1", allow_paths=False)).name == FILE
    )  # offline, plain r1 = best one you have
    assert cli("list").exit_code == 0 and cli("pull", "r1:tiny").exit_code == 0
    result = cli("pull", "r1:70b")
    assert result.exit_code == 9 and "HF_HUB_OFFLINE=1 forbids downloading it" in result.stderr
    with pytest.raises(OfflineError):
        resolve.resolve(ModelAddress.parse("r1:70b", allow_paths=False), pull_if_missing=True)
    assert len(tiny_hub.requests) == seen


def test_plain_r1_is_the_best_fit_for_this_machine(tiny_hub, monkeypatch):
    monkeypatch.setattr(hardware, "detect_live", small_pc)
    with pytest.raises(ModelNotFound, match="r1:1.5b-q4_k_m is not downloaded"):
        resolve.resolve(ModelAddress.parse("r1", allow_paths=False))
    assert cli("pull", "r1:tiny").exit_code == 0
    # a caller that will not download (the server) gets the best model already here
    assert resolve.resolve(ModelAddress.parse("r1", allow_paths=False)).name == FILE
    rows = {r["name"]: r for r in json.loads(cli("models", "--json").stdout)}
    assert rows["r1:1.5b-q4_k_m"]["verdict"] == "fits on GPU" and rows["r1:1.5b-q4_k_m"]["recommended"]
    assert rows["r1:tiny-f16"]["downloaded"] and not rows["r1:tiny-f16"]["recommended"]
    assert rows["r1:tiny-f16"]["decode_tps"] > rows["r1:1.5b-q4_k_m"]["decode_tps"] > 0
    assert rows["r1:70b-q4_k_m"]["verdict"] == "too big" and not rows["r1:70b-q4_k_m"]["downloaded"]
    table = cli("models").stdout
    assert "r1:tiny-f16" in table and "too big" in table


def test_not_enough_disk(tiny_hub, monkeypatch):
    monkeypatch.setattr(store, "free_space", lambda path: 10_000_000)
    result = cli("pull", "r1:tiny")
    assert result.exit_code == InsufficientDisk.exit_code
    assert "Not enough disk space: the download needs 42.9 MiB" in result.stderr
    assert tiny_hub.gets(FILE) == []


def test_ctrl_c_then_pull_again_resumes(tiny_hub, tiny_model):
    # http_get writes whole 10 MB chunks: stall the transfer after 12 MB, interrupt, pull again
    tiny_hub.repos[REPO].faults[FILE] = fault = Fault(stall_after=12 * 1024 * 1024)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-c", "from r1local.cli import main; main()", "pull", "r1:tiny"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    blobs = config.hf_cache() / "models--r1local-test--Tiny-R1-GGUF" / "blobs"
    deadline = time.time() + 30
    while not any(p.stat().st_size for p in blobs.glob("*.incomplete")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.wait(10)
    fault.release.set()
    (partial,) = blobs.glob("*.incomplete")
    done = partial.stat().st_size
    assert proc.returncode != 0 and done > 0

    tiny_hub.repos[REPO].faults.clear()
    result = cli("pull", "r1:tiny")
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).read_bytes() == tiny_model.read_bytes()
    assert tiny_hub.gets(FILE)[-1].headers["range"] == f"bytes={done}-"


def test_run_pulls_and_answers_with_a_catalog_name(tiny_hub):
    args = ("run", "r1:tiny", "--yes", "--json", "--max-tokens", "6", "--ctx", "256", "--threads", "1", "Hi")
    first = cli(*args)
    assert first.exit_code == 20, first.output  # answered, then stopped at --max-tokens
    assert json.loads(first.stdout)["usage"]["completion_tokens"] == 6
    second = cli(*args)  # already downloaded: answered without fetching the file again
    assert second.exit_code == 20, second.output
    assert len(tiny_hub.gets(FILE)) == 1


def test_a_copy_cut_short_is_flagged_and_pull_fetches_it_again(tiny_hub, tiny_model):
    path = Path(cli("pull", "r1:tiny").stdout.strip())
    with path.resolve().open("r+b") as f:
        f.truncate(1000)
    listed = cli("list", "--json")
    assert json.loads(listed.stdout)[0]["complete"] is False
    assert "cut short" in cli("list").stdout
    again = cli("pull", "r1:tiny")
    assert again.exit_code == 0 and "cut short: downloading it again" in again.stderr, again.output
    assert path.read_bytes() == tiny_model.read_bytes() and len(tiny_hub.gets(FILE)) == 2


def test_a_cache_that_cannot_be_written_is_one_line(tiny_hub, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "file" / "hub"))  # a file where a folder should be
    result = cli("pull", "r1:tiny")
    assert result.exit_code == StorageError.exit_code and "Not a directory" in result.stderr, result.output
    assert "Traceback" not in result.output


def test_a_second_pull_of_the_same_file_says_it_waits(tiny_hub, tiny_model):
    tiny_hub.repos[REPO].faults[FILE] = fault = Fault(stall_after=12 << 20)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-c", "from r1local.cli import main; main()", "pull", "r1:tiny"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    blobs = config.hf_cache() / "models--r1local-test--Tiny-R1-GGUF" / "blobs"
    deadline = time.time() + 30
    while not any(p.stat().st_size for p in blobs.glob("*.incomplete")):
        assert time.time() < deadline
        time.sleep(0.05)
    second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said = "".join(second.stderr.readline() for _ in range(3))  # Pulling, Contacting, then Waiting
    assert "Waiting for another pull of Tiny-R1-F16.gguf" in said
    tiny_hub.repos[REPO].faults.clear()
    fault.release.set()
    first.wait(60)
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0 and Path(out.strip()).read_bytes() == tiny_model.read_bytes()
