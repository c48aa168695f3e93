"""/api/pull as a background job: a limit, its own threads, it stops when its client leaves; a
cache that cannot be written and a copy cut short get a clear answer."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import httpx
from serving import TEST_SETTINGS, running_server
from testhub import Fault

from r1local import config
from r1local.server.pull import MAX_PULLS

SAY = [{"role": "user", "content": "Hi"}]


def repo(n: int) -> str:
    return f"someone/Tiny{n}-R1-GGUF"


def name(n: int) -> str:
    return f"hf.co/{repo(n)}:Q8_0"


def stalled(hub, tiny_model, count: int) -> list[Fault]:  # noqa: F811
    """`count` repositories whose file stops after 12 MB (http_get reports progress every 10 MB)
    until its fault is released."""
    faults = []
    for n in range(count):
        hub.add(repo(n), {f"Tiny{n}-R1-Q8_0.gguf": tiny_model.read_bytes()})
        faults.append(hub.repos[repo(n)].faults.setdefault(f"Tiny{n}-R1-Q8_0.gguf", Fault(stall_after=12 << 20)))
    return faults


def start_pull(client: httpx.Client, n: int):
    """Open a streamed pull and read until its first progress line; return the open response."""
    response = client.send(client.build_request("POST", "/api/pull", json={"model": name(n)}), stream=True)
    assert response.status_code == 200, response.read()
    lines = response.iter_lines()
    for line in lines:
        if json.loads(line).get("completed"):
            return response, lines
    raise AssertionError("the pull ended before any progress")


def blobs(n: int) -> list[str]:
    folder = config.hf_cache() / f"models--someone--Tiny{n}-R1-GGUF" / "blobs"
    return sorted(p.suffix or "complete" for p in folder.glob("*"))


def test_pulls_are_limited_and_stop_when_their_client_leaves(hub, tiny_model):  # noqa: F811
    faults = stalled(hub, tiny_model, 7)
    with running_server(replace(TEST_SETTINGS, models=())) as url, httpx.Client(base_url=url, timeout=30) as client:
        pulls = [start_pull(client, n) for n in range(MAX_PULLS)]
        for n in range(MAX_PULLS, 7):  # once, seven pulls took every worker thread of the server
            refused = client.post("/api/pull", json={"model": name(n)})
            assert refused.status_code == 503 and refused.headers["retry-after"], refused.text
        for response, _ in pulls:
            response.close()  # the clients leave
        time.sleep(0.5)
        for n, fault in enumerate(faults):  # the files flow again: a pull still running would finish
            hub.repos[repo(n)].faults.clear()
            fault.release.set()
        deadline = time.monotonic() + 20
        while client.post("/api/pull", json={"model": name(6), "stream": False}).status_code == 503:
            assert time.monotonic() < deadline, "the abandoned pulls still hold their places"
            time.sleep(0.1)
        for n in range(MAX_PULLS):  # the abandoned downloads stopped: only partial files remain
            assert blobs(n) == [".incomplete"]


def test_pulls_do_not_starve_a_model_load(hub, tiny_model):  # noqa: F811
    # seven stalled pulls once held every worker thread: a model load waited for them
    faults = stalled(hub, tiny_model, 7)
    settings = replace(TEST_SETTINGS, models=(str(tiny_model),))
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        client.post("/api/generate", json={"model": "tiny-r1-qwen", "keep_alive": 0})  # unload
        pulls = [
            client.send(client.build_request("POST", "/api/pull", json={"model": name(n)}), stream=True)
            for n in range(7)
        ]
        time.sleep(1)
        started = time.monotonic()
        reply = client.post(
            "/api/generate",
            json={"model": "tiny-r1-qwen", "prompt": "Hi", "stream": False, "options": {"num_predict": 2}},
        )
        assert reply.status_code == 200 and time.monotonic() - started < 10
        assert sorted(p.status_code for p in pulls) == [200] * MAX_PULLS + [503] * (7 - MAX_PULLS)
        for fault in faults:
            fault.release.set()
        for response in pulls:
            response.close()


def test_a_cache_that_cannot_be_written_ends_the_stream_with_an_error(hub, tiny_model, tmp_path, monkeypatch):  # noqa: F811
    hub.add(repo(0), {"Tiny0-R1-Q8_0.gguf": tiny_model.read_bytes()})
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("HF_HUB_CACHE", str(blocker / "hub"))
    with running_server(TEST_SETTINGS) as url:
        lines = [json.loads(line) for line in httpx.post(f"{url}/api/pull", json={"model": name(0)}).text.splitlines()]
        assert lines[0] == {"status": "pulling manifest"} and "Not a directory" in lines[-1]["error"]
        assert str(tmp_path) not in lines[-1]["error"]
        whole = httpx.post(f"{url}/api/pull", json={"model": name(0), "stream": False})
        assert whole.status_code == 507 and "Not a directory" in whole.json()["error"]


def test_a_copy_cut_short_is_not_listed_and_a_pull_repairs_it(hub, tiny_model):  # noqa: F811
    data = tiny_model.read_bytes()
    hub.add(repo(0), {"Tiny0-R1-Q8_0.gguf": data})
    with running_server(TEST_SETTINGS) as url:
        httpx.post(f"{url}/api/pull", json={"model": name(0), "stream": False}).raise_for_status()
        (blob,) = (config.hf_cache() / "models--someone--Tiny0-R1-GGUF" / "blobs").glob("*")
        with blob.open("r+b") as f:
            f.truncate(len(data) // 2)
        assert httpx.get(f"{url}/api/tags").json()["models"] == []
        shown = httpx.post(f"{url}/api/show", json={"model": name(0)})
        assert shown.status_code == 422 and "its tensors need" in shown.json()["error"]
        lines = httpx.post(f"{url}/api/pull", json={"model": name(0)}).text.splitlines()
        assert "damaged" in lines[1] and json.loads(lines[-1]) == {"status": "success"}
        assert len(hub.gets("Tiny0-R1-Q8_0.gguf")) == 2  # fetched again, not "already downloaded"
        assert [m["model"] for m in httpx.get(f"{url}/api/tags").json()["models"]] == [f"{repo(0)}/Tiny0-R1-Q8_0.gguf"]
