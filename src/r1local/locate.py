"""The one way every command finds `r1local serve`, and whether it may send it anything.

Where: R1LOCAL_HOST when set (the user's explicit choice, as OLLAMA_HOST), else the record the running
server keeps in R1LOCAL_HOME, else the default address. Whether: only a server that proves it is this
user's own (trust.py) gets a prompt or the API key; the one exception is a server on another machine
that R1LOCAL_HOST names, which cannot share this PC's secret and is trusted because the user chose it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import config, server_record, trust
from .client import ResidentServer
from .errors import UsageError


@dataclass(frozen=True)
class Lookup:
    url: str
    source: str  # how the URL was found, for the line that names a server other than the default
    server: ResidentServer | None = None  # set when a server answers and may be trusted
    refused: str | None = None  # why something answered but was not sent anything

    @property
    def note(self) -> str | None:
        """The line naming the server used, when it is not the default one."""
        if self.server is None or self.url == config.DEFAULT_URL:
            return None
        return f"Using r1local serve at {self.url} ({self.source})."


def _address() -> tuple[str, str, bool]:
    """(URL, where it came from, whether the user named it)."""
    if named := config.server_host():
        url, variable = named
        return url, variable, True
    try:
        record = server_record.live()
    except UsageError:
        record = None  # `stop` reports a damaged record; finding a server just looks elsewhere
    if record is not None:
        return record.url, f"pid {record.pid}, recorded in {server_record.record_file()}", False
    return config.DEFAULT_URL, "the default address", False


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def find() -> Lookup:
    """The server commands should use, if one answers and is trusted."""
    url, source, named = _address()
    probe = trust.probe(url)
    if not probe.answers:
        return Lookup(url, source)
    if probe.pid is None and (not named or is_loopback(url)):
        return Lookup(
            url,
            source,
            refused=(
                f"The program answering at {url} is not your r1local serve (it cannot prove it knows "
                f"{trust.secret_file()}), so nothing was sent to it."
            ),
        )
    return Lookup(url, source, ResidentServer(url, config.api_key()))
