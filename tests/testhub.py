"""A loopback stand-in for the Hugging Face Hub, for the real huggingface_hub client code.

It serves the part of the Hub API that downloads use, with the headers the client relies on:

    GET  /api/models/{repo}[/revision/{rev}][?blobs=true]  model info; siblings carry size, blobId
                                                           and lfs {sha256, size} with blobs=true
    HEAD /{repo}/resolve/{rev}/{file}                      X-Repo-Commit, ETag / X-Linked-Etag (the
    GET  /{repo}/resolve/{rev}/{file}                      LFS sha256), X-Linked-Size, Content-Length;
                                                           Range -> 206 with Content-Range
Errors carry the Hub's X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo),
so huggingface_hub raises its own typed errors. Faults are injected per file (`Fault`) and per
model-info request (`info_failures`), and every request is recorded (`requests`) so a test can
check what the client sent. `black_hole()` and `refused_url()` stand for networks that fail:
an endpoint that accepts connections and never answers, and one that refuses them.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_test_token"  # the only token a gated repo accepts


@dataclass
class Fault:
    """Misbehaviour for one file's GET requests."""

    drop_after: int | None = None  # send this many bytes, then close the connection
    drops: int = 1  # ...on this many requests
    then_gone: bool = False  # once the drops are spent, close every later request before answering
    corrupt: bool = False  # flip a byte in the body but advertise the true sha256
    stall_after: int | None = None  # send this many bytes, then wait until `release` is set
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Repo:
    files: dict[str, bytes]
    gated: bool = False
    commit: str = COMMIT
    faults: dict[str, Fault] = field(default_factory=dict)
    crafted: dict[str, dict] = field(default_factory=dict)  # per file: sibling fields a hostile hub sends instead

    def sha(self, name: str) -> str:
        return hashlib.sha256(self.files[name]).hexdigest()


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names


class TestHub:
    """`with TestHub() as hub: hub.add("user/repo", {"x.gguf": data}); hub.url`"""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.info_failures: list[int] = []  # statuses the next model-info requests get, one each
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, repo_id: str, files: dict[str, bytes], *, gated: bool = False) -> Repo:
        self.repos[repo_id] = Repo(dict(files), gated=gated)
        return self.repos[repo_id]

    def gets(self, filename: str) -> list[Request]:
        """The GET requests for one file's content."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + filename)]

    def __enter__(self) -> TestHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for repo in self.repos.values():
            for fault in repo.faults.values():
                fault.release.set()
        self._server.shutdown()
        self._server.server_close()


_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_INFO = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$")


def _handler(hub: TestHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            hub.requests.append(Request(self.command, path, {k.lower(): v for k, v in self.headers.items()}))
            if _INFO.match(path) and hub.info_failures:
                return self._error(hub.info_failures.pop(0), "Service unavailable")
            if m := _INFO.match(path):
                return self._info(m.group(1), m.group(2), "blobs" in parse_qs(url.query))
            if m := _RESOLVE.match(path):
                return self._resolve(m.group(1), m.group(2), m.group(3), body)
            self._error(404, "Not found")

        def _repo(self, repo_id: str, revision: str | None) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "Repository not found", code="RepoNotFound")
            elif revision not in (None, "main", repo.commit):
                self._error(404, "Invalid rev id", code="RevisionNotFound")
            else:
                return repo
            return None

        def _info(self, repo_id: str, revision: str | None, blobs: bool) -> None:
            if (repo := self._repo(repo_id, revision)) is None:
                return
            siblings = []
            for name, data in repo.files.items():
                entry: dict = {"rfilename": name}
                if blobs:
                    entry.update(
                        size=len(data),
                        blobId=hashlib.sha1(data).hexdigest(),
                        lfs={"size": len(data), "sha256": repo.sha(name), "pointerSize": 134},
                    )
                entry.update(repo.crafted.get(name, {}))
                siblings.append(entry)
            info = {
                "id": repo_id,
                "sha": repo.commit,
                "gated": "manual" if repo.gated else False,
                "private": False,
                "siblings": siblings,
            }
            self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})

        def _resolve(self, repo_id: str, revision: str, name: str, body: bool) -> None:
            if (repo := self._repo(repo_id, revision)) is None:
                return
            if repo.gated and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._error(401, "Access to this model is restricted.", code="GatedRepo")
            if name not in repo.files:
                return self._error(404, "Entry not found", code="EntryNotFound", commit=repo.commit)
            data, sha = repo.files[name], repo.sha(name)
            headers = {
                "X-Repo-Commit": repo.commit,
                "ETag": f'"{sha}"',
                "X-Linked-Etag": f'"{sha}"',
                "X-Linked-Size": str(len(data)),
                "Accept-Ranges": "bytes",
            }
            start = 0
            if m := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "")):
                start = int(m.group(1))
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            fault = repo.faults.get(name) if body else None
            if fault and fault.corrupt:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            if not body:
                return self._send(200, b"", headers, length=len(data))
            chunk = data[start:]
            status = 206 if start else 200
            if fault and fault.then_gone and fault.drops == 0:
                self.close_connection = True  # the network went away mid-download
                return
            if fault and fault.drop_after is not None and fault.drops > 0:
                fault.drops -= 1
                self._send(status, chunk[: fault.drop_after], headers, length=len(chunk))
                self.close_connection = True
                return
            if fault and fault.stall_after is not None:
                self._send(status, chunk[: fault.stall_after], headers, length=len(chunk))
                fault.release.wait(30)
                self.close_connection = True
                return
            self._send(status, chunk, headers)

        def _error(self, status: int, message: str, *, code: str | None = None, commit: str | None = None) -> None:
            headers = {"X-Error-Message": message, "Content-Type": "application/json"}
            if code:
                headers["X-Error-Code"] = code
            if commit:
                headers["X-Repo-Commit"] = commit
            self._send(status, json.dumps({"error": message}).encode(), headers)

        def _send(self, status: int, data: bytes, headers: dict[str, str], *, length: int | None = None) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data) if length is None else length))
            self.end_headers()
            try:
                self.wfile.write(data)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


class BlackHole:
    """`with BlackHole() as url:` an endpoint that accepts every connection and never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                self._held.append(self._listener.accept()[0])  # kept open, never read or answered
            except TimeoutError:
                continue
            except OSError:
                return

    def __enter__(self) -> str:
        self._thread.start()
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for conn in [*self._held, self._listener]:
            conn.close()


def refused_url() -> str:
    """A loopback endpoint where nothing listens: every connection is refused at once."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Iterator[TestHub]:
    """A running test hub, with HF_ENDPOINT pointing at it and a fresh cache and r1local home."""
    import huggingface_hub.constants

    with TestHub() as test_hub:
        monkeypatch.setenv("HF_ENDPOINT", test_hub.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("R1LOCAL_HOME", str(tmp_path / "r1local-home"))
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "R1LOCAL_CATALOG"):
            monkeypatch.delenv(name, raising=False)
        # huggingface_hub read HF_HUB_OFFLINE at import; keep it in step with the environment
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        yield test_hub
