"""How the CLI recognises this user's own `r1local serve` before it sends a prompt or an API key.

Every server reads (or first writes) a random secret kept in R1LOCAL_HOME, a file only this user can
read. The CLI asks /health with a fresh random challenge; the server answers with its pid and an HMAC
of the challenge, its pid and the port it listens on. The secret never travels, an old answer is
useless for a new challenge, and a program on another port cannot pass the real server's answer off
as its own. Anything else that answers on the port (another user's program, a leftover) fails the check.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from . import config

CHALLENGE_HEADER = "X-R1local-Challenge"
PROOF_HEADER = "X-R1local-Proof"
PROBE_TIMEOUT_S = 0.5  # a server on loopback answers /health in milliseconds
_MAX_CHALLENGE = 128


def secret_file() -> Path:
    return config.home() / "secret"


def read_secret() -> bytes | None:
    """The secret, when this user's file holds one (a file someone else owns or can write is no secret)."""
    try:
        with open(secret_file(), "rb") as file:
            info = os.fstat(file.fileno())
            value = file.read().strip()
    except OSError:
        return None
    if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o077):
        return None
    return value or None


def server_secret() -> bytes | None:
    """The secret a server proves it knows, created on first use: written aside, then linked into
    place, so two servers starting at once end up with the same one."""
    if (value := read_secret()) is not None:
        return value
    path = secret_file()
    draft = path.with_name(f".secret-{os.getpid()}")
    try:
        with config.open_private(draft, "wb") as file:
            file.write(secrets.token_hex(32).encode())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
    except OSError:
        return None  # a home that cannot be written: the server runs, the CLI will not trust it
    finally:
        draft.unlink(missing_ok=True)
    return read_secret()


def proof(secret: bytes, challenge: str, pid: int, port: int) -> str:
    """The header value a server answers a challenge with: its pid and the HMAC that binds it."""
    digest = hmac.new(secret, f"r1local-serve|{challenge}|{pid}|{port}".encode(), hashlib.sha256).hexdigest()
    return f"{pid} {digest}"


def answer(secret: bytes | None, challenge: str | None, port: int) -> str | None:
    """What /health adds for a challenge (None when there is none, or no secret to prove)."""
    if secret is None or not challenge or len(challenge) > _MAX_CHALLENGE or not challenge.isalnum():
        return None
    return proof(secret, challenge, os.getpid(), port)


@dataclass(frozen=True)
class Probe:
    answers: bool  # something that speaks r1local's /health listens there
    pid: int | None = None  # the pid of this user's own server, proven; None when it could not prove it


def probe(url: str) -> Probe:
    """Ask the server at `url` whether it is this user's own: no key, no prompt, only a challenge."""
    challenge = secrets.token_hex(16)
    try:
        response = httpx.get(f"{url}/health", headers={CHALLENGE_HEADER: challenge}, timeout=PROBE_TIMEOUT_S)
        answers = isinstance(response.json(), dict) and "status" in response.json()
    except (httpx.HTTPError, ValueError):
        return Probe(False)
    secret = read_secret()
    pid, _, _ = response.headers.get(PROOF_HEADER, "").partition(" ")
    if not answers or secret is None or not pid.isdigit():
        return Probe(answers)
    port = urlsplit(url).port or (443 if url.startswith("https") else 80)
    expected = proof(secret, challenge, int(pid), port)
    return Probe(True, int(pid) if hmac.compare_digest(response.headers[PROOF_HEADER], expected) else None)
