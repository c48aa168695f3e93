"""`download.pull` / `find_local` / `installed` / `remove`: the real huggingface_hub client against
the loopback test hub."""

from __future__ import annotations

import hashlib
import os
import random
import re
import threading
import time

import huggingface_hub.constants
import pytest
from huggingface_hub import scan_cache_dir, try_to_load_from_cache
from testhub import TOKEN, Fault

from r1local import config, disk_space, download, store
from r1local.errors import AuthRequired, DownloadError, InsufficientDisk, ModelNotFound, OfflineError
from r1local.store import Target

REPO = "someone/Tiny-GGUF"
Q4 = "Tiny-Q4_K_M.gguf"
Q8 = "Tiny-Q8_0.gguf"
SPLIT = [f"Tiny-Q6_K/Tiny-Q6_K-0000{i}-of-00003.gguf" for i in (1, 2, 3)]


def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def repo(hub):  # noqa: F811
    files = {Q4: blob(2_000_000, 1), Q8: blob(3_000_000, 2), "README.md": b"# tiny\n"}
    files.update({name: blob(700_000, 10 + i) for i, name in enumerate(SPLIT)})
    return hub.add(REPO, files)


def test_pull_complete_file_into_the_standard_cache(hub, repo):
    path = download.pull(Target(REPO, quant="Q4_K_M"))
    assert path.read_bytes() == repo.files[Q4]
    # the layout every Hugging Face tool reads: blob named by sha256, snapshot symlink, refs/main
    assert path.is_symlink() and os.path.basename(os.path.realpath(path)) == repo.sha(Q4)
    assert try_to_load_from_cache(REPO, Q4, cache_dir=config.hf_cache()) == str(path)
    cached = scan_cache_dir(config.hf_cache())
    assert {f.file_name for r in cached.repos for rev in r.revisions for f in rev.files} == {Q4}
    assert store.find_local(Target(REPO, files=(Q4,))) == path


def test_split_model_pulls_every_part(hub, repo):
    first = download.pull(Target(REPO, files=(SPLIT[0],)))
    folder = first.parent
    assert [(folder / os.path.basename(n)).read_bytes() == repo.files[n] for n in SPLIT] == [True] * 3
    (model,) = store.installed()
    assert model.files == SPLIT and model.size == 3 * 700_000 and model.quant == "Q6_K"


def test_dropped_connection_resumes_with_a_range_request(hub, repo, monkeypatch):
    # http_get keeps whole chunks only (10 MB by default): small chunks make a 1 MB drop resumable
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    repo.faults[Q8] = Fault(drop_after=1_000_000)
    path = download.pull(Target(REPO, files=(Q8,)))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == repo.sha(Q8)
    first, second = hub.gets(Q8)
    assert "range" not in first.headers
    start = int(re.fullmatch(r"bytes=(\d+)-", second.headers["range"]).group(1))
    assert 0 < start <= 1_000_000  # resumed, not restarted


def test_partial_file_from_an_interrupted_run_is_resumed(hub, repo):
    # what Ctrl-C leaves behind: blobs/<sha256>.incomplete with the first bytes
    partial = config.hf_cache() / "models--someone--Tiny-GGUF" / "blobs" / f"{repo.sha(Q8)}.incomplete"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(repo.files[Q8][:1_234_567])
    path = download.pull(Target(REPO, files=(Q8,)))
    assert path.read_bytes() == repo.files[Q8] and not partial.exists()
    (request,) = hub.gets(Q8)
    assert request.headers.get("range") == "bytes=1234567-"


def test_corrupted_bytes_fail_verification_and_leave_nothing(hub, repo):
    repo.faults[Q4] = Fault(corrupt=True)
    with pytest.raises(DownloadError, match="failed verification"):
        download.pull(Target(REPO, files=(Q4,)))
    storage = config.hf_cache() / "models--someone--Tiny-GGUF"
    assert not (storage / "blobs" / repo.sha(Q4)).exists()
    assert not list(storage.rglob("*.incomplete"))
    assert store.find_local(Target(REPO, files=(Q4,))) is None


def test_unknown_repo_file_quant_and_revision(hub, repo):
    with pytest.raises(ModelNotFound, match="nobody/Nothing was not found on the Hub"):
        download.pull(Target("nobody/Nothing", quant="Q4_K_M"))
    with pytest.raises(ModelNotFound, match="Tiny-Q2_K.gguf is not in someone/Tiny-GGUF") as info:
        download.pull(Target(REPO, files=("Tiny-Q2_K.gguf",)))
    assert "Q4_K_M, Q6_K, Q8_0" in info.value.hint
    with pytest.raises(ModelNotFound, match="has no IQ4_XS GGUF file"):
        download.pull(Target(REPO, quant="IQ4_XS"))
    with pytest.raises(ModelNotFound, match="has no revision 'v9'"):
        download.pull(Target(REPO, quant="Q4_K_M", revision="v9"))


def test_gated_repo_needs_hf_token(hub, repo, monkeypatch):
    hub.add("meta/Gated-GGUF", {Q4: blob(100_000, 3)}, gated=True)
    with pytest.raises(AuthRequired, match="gated") as info:
        download.pull(Target("meta/Gated-GGUF", quant="Q4_K_M"))
    assert "HF_TOKEN" in info.value.hint
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert download.pull(Target("meta/Gated-GGUF", quant="Q4_K_M")).stat().st_size == 100_000


def test_not_enough_disk_fails_before_downloading(hub, repo, monkeypatch):
    monkeypatch.setattr(store, "free_space", lambda path: 1_000_000)
    with pytest.raises(InsufficientDisk, match=f"needs {store.human_size(2_100_000)}") as info:
        download.pull(Target(REPO, files=(SPLIT[0],)))
    assert f"has {store.human_size(1_000_000)} free" in info.value.message and "HF_HUB_CACHE" in info.value.hint
    assert hub.gets(SPLIT[0]) == []


def test_a_margin_of_free_space_is_kept(hub, repo, monkeypatch):
    monkeypatch.setattr(store, "free_space", lambda path: disk_space.MARGIN_BYTES + 1_500_000)
    with pytest.raises(
        InsufficientDisk,
        match=f"needs {store.human_size(2_000_000)}, and {store.human_size(disk_space.MARGIN_BYTES)} stays free",
    ) as info:
        download.pull(Target(REPO, quant="Q4_K_M"))
    assert "\n" not in info.value.message and hub.gets(Q4) == []
    monkeypatch.setattr(store, "free_space", lambda path: disk_space.MARGIN_BYTES + 2_000_000)
    assert download.pull(Target(REPO, quant="Q4_K_M")).read_bytes() == repo.files[Q4]


def test_a_pull_counts_the_bytes_the_pulls_already_running_still_need(hub, repo, monkeypatch):
    # room for either file with the margin, not for both
    monkeypatch.setattr(store, "free_space", lambda path: disk_space.MARGIN_BYTES + 3_500_000)
    repo.faults[Q8] = stalled = Fault(stall_after=0)  # then the connection drops: the first pull fails
    failures = []

    def first_pull() -> None:
        try:
            download.pull(Target(REPO, quant="Q8_0"))
        except DownloadError as error:
            failures.append(error)

    first = threading.Thread(target=first_pull)
    first.start()
    deadline = time.monotonic() + 10
    while not hub.gets(Q8):  # the first pull has reserved its room and is downloading
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(
        InsufficientDisk,
        match=f"needs {store.human_size(2_000_000)}, the pulls already running {store.human_size(3_000_000)} more",
    ):
        download.pull(Target(REPO, quant="Q4_K_M"))
    stalled.release.set()
    first.join(30)
    assert failures and "Tiny-Q8_0.gguf" in failures[0].message
    assert download.pull(Target(REPO, quant="Q4_K_M")).read_bytes() == repo.files[Q4]  # room again once it ends
    assert not list(config.hf_cache().glob(".locks/r1local-space/*.json"))  # nothing left reserved


def test_offline_mode_uses_the_cache_and_refuses_downloads(hub, repo, monkeypatch):
    download.pull(Target(REPO, quant="Q4_K_M"))
    seen = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert store.find_local(Target(REPO, quant="Q4_K_M")).is_file()
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE=1 forbids downloading"):
        download.pull(Target(REPO, quant="Q8_0"))
    assert len(hub.requests) == seen


def test_rm_frees_exactly_that_model(hub, repo):
    download.pull(Target(REPO, quant="Q4_K_M"))
    download.pull(Target(REPO, quant="Q8_0"))
    download.pull(Target(REPO, files=(SPLIT[0],)))
    models = {m.quant: m for m in store.installed()}
    assert set(models) == {"Q4_K_M", "Q8_0", "Q6_K"}
    assert store.remove(models["Q6_K"]) == 3 * 700_000
    assert store.remove(models["Q8_0"]) == 3_000_000
    storage = config.hf_cache() / "models--someone--Tiny-GGUF"
    assert {p.name for p in (storage / "blobs").iterdir()} == {repo.sha(Q4)}
    assert [m.quant for m in store.installed()] == ["Q4_K_M"]
    assert store.remove(store.installed()[0]) == 2_000_000
    assert not storage.exists()


# ------------------------------------------------------------------ a hostile Hub cannot write outside the cache


def _files_outside_cache(root) -> set[str]:
    cache = config.hf_cache()
    return {str(p) for p in root.rglob("*") if not p.is_relative_to(cache) and p.name != "victim"}


@pytest.mark.parametrize(
    "crafted",
    [
        pytest.param({"commit": "../../../../escape"}, id="commit"),
        pytest.param({"name": "../../../../escape-Q4_K_M.gguf"}, id="file-name"),
        pytest.param({"name": "/tmp/escape-Q4_K_M.gguf"}, id="absolute-name"),
        pytest.param({"lfs": {"size": 5, "sha256": "../../../../escape", "pointerSize": 1}}, id="sha256"),
        pytest.param({"lfs": None, "blobId": "../../../../escape"}, id="blob-id"),
        pytest.param({"lfs": {"size": -5, "sha256": "0" * 64, "pointerSize": 1}}, id="size"),
    ],
)
def test_a_hub_answer_that_names_paths_outside_the_cache_is_refused(hub, tmp_path, crafted):  # noqa: F811
    name = crafted.get("name", "Evil-Q4_K_M.gguf")
    repo = hub.add("evil/Repo", {name: b"GGUF" + b"x" * 100})
    if "commit" in crafted:
        repo.commit = crafted["commit"]
    repo.crafted[name] = {k: v for k, v in crafted.items() if k in ("lfs", "blobId")}
    victim = tmp_path / "victim"  # where an escaping symlink would land: it must survive
    victim.write_text("keep me")
    before = _files_outside_cache(tmp_path)
    with pytest.raises(DownloadError, match="nothing was written") as info:
        download.pull(Target("evil/Repo", quant="Q4_K_M"))
    assert "HF_ENDPOINT" in info.value.hint
    assert _files_outside_cache(tmp_path) == before and victim.read_text() == "keep me"
    assert hub.gets(name.rsplit("/", 1)[-1]) == []  # refused before any byte was requested
