"""Hub requests that never leave the user staring at a blank screen.

A metadata request gets a connect and a read timeout and is retried with backoff where that is safe
(a GET that failed on the network, timed out, or got 429 or a 5xx), and whoever waits is told first
whom r1local contacts, then each retry. With the default timeouts an endpoint that accepts
connections and never answers ends in one clear error after about 35 s. The file transfer itself is
huggingface_hub's `http_get`: its own timeout (HF_HUB_DOWNLOAD_TIMEOUT, 10 s to connect and between
bytes) and its resuming retries apply there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

import httpx2
from huggingface_hub.errors import HfHubHTTPError

from . import config
from .errors import DownloadError

T = TypeVar("T")
Notify = Callable[[str], None]
CONNECT_TIMEOUT_S = 5.0
RETRY_WAITS_S = (1.0, 3.0)  # the pause before the second and the third try
RETRY_STATUSES = {429, 500, 502, 503, 504}
NEXT_STEP = "Check the network (and HF_ENDPOINT if you use a mirror), then run the same command again."


def host() -> str:
    """The Hub's host as people know it: huggingface.co, or the mirror in HF_ENDPOINT."""
    return urlsplit(config.hf_endpoint()).netloc or config.hf_endpoint()


def timeout() -> httpx2.Timeout:
    read = config.hub_read_timeout()
    return httpx2.Timeout(read, connect=min(CONNECT_TIMEOUT_S, read))


def _retryable(e: Exception) -> bool:
    if isinstance(e, HfHubHTTPError):
        return e.response is not None and e.response.status_code in RETRY_STATUSES
    return isinstance(e, httpx2.TransportError)


def what_failed(e: httpx2.TransportError, what: str, tries: int) -> str:
    """One sentence for a network failure, saying what happened (no download had started)."""
    after = f" ({tries} tries)" if tries > 1 else ""
    if isinstance(e, httpx2.ConnectTimeout):
        return f"{host()} did not accept a connection within {timeout().connect:.0f} s{after}; nothing was downloaded."
    if isinstance(e, httpx2.TimeoutException):
        return (
            f"{host()} accepted the connection but sent no answer for {what} within {timeout().read:.0f} s"
            f"{after}; nothing was downloaded."
        )
    if isinstance(e, httpx2.ConnectError):
        return f"Could not connect to {host()}{after}: {e or type(e).__name__}; nothing was downloaded."
    return f"The connection to {host()} failed while asking for {what}{after}: {e or type(e).__name__}."


def call(fn: Callable[[httpx2.Timeout], T], what: str, notify: Notify | None = None) -> T:
    """`fn(timeout)`, a Hub GET for `what`, tried up to len(RETRY_WAITS_S) + 1 times; `notify` hears
    whom r1local contacts and every retry. The last network failure becomes one DownloadError; the
    Hub's other answers (404, gated...) are raised as they are, for the caller to word."""
    say = notify or (lambda line: None)
    say(f"Contacting {host()} for {what} ...")
    tries = len(RETRY_WAITS_S) + 1
    for attempt, wait in enumerate(RETRY_WAITS_S, start=1):
        try:
            return fn(timeout())
        except (httpx2.TransportError, HfHubHTTPError) as e:
            if not _retryable(e):
                raise
            problem = (
                f"answered {e.response.status_code}"
                if isinstance(e, HfHubHTTPError) and e.response is not None
                else "sent no answer"
                if isinstance(e, httpx2.TimeoutException)
                else "could not be reached"
            )
            say(f"{host()} {problem}; trying again in {wait:.0f} s (try {attempt + 1} of {tries}).")
            time.sleep(wait)
    try:
        return fn(timeout())
    except httpx2.TransportError as e:
        raise DownloadError(what_failed(e, what, tries), NEXT_STEP) from e
