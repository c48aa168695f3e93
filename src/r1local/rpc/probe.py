"""Ask a worker what it offers, over llama.cpp's RPC protocol, without going through ggml.

ggml's RPC client aborts the whole process when a server is down or answers badly, so everything
r1local learns about a worker before loading a model (is it up, which protocol, how many devices,
how much memory, how fast the link is) comes from here: a socket with a timeout and a clear error.
The messages are the vendored llama.cpp's (ggml-rpc.cpp): a command byte, a little-endian u64 size,
the payload; answers are a u64 size and the payload.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

from ..errors import WorkerUnreachable

PROTO_MAJOR = 7  # RPC_PROTO_MAJOR_VERSION of the vendored ggml-rpc.h
CMD_ALLOC_BUFFER, CMD_BUFFER_GET_BASE, CMD_FREE_BUFFER, CMD_SET_TENSOR = 0, 3, 4, 6
CMD_GET_DEVICE_MEMORY, CMD_HELLO, CMD_DEVICE_COUNT = 11, 14, 15
CONN_CAPS = 24  # RPC_CONN_CAPS_SIZE: zeros ask for plain TCP
GGML_TYPE_I8 = 24
# struct rpc_tensor (packed): id, type, buffer, ne[4], nb[4], op, op_params[16], flags, src[10],
# view_src, view_offs, data, name[64], use_count
RPC_TENSOR = struct.Struct("<QIQ4I4II16ii10QQQQ64si")
BANDWIDTH_PROBE_BYTES = 8 * 1024 * 1024


@dataclass
class RemoteDevice:
    index: int
    free: int
    total: int


@dataclass
class WorkerInfo:
    endpoint: str
    version: str
    devices: list[RemoteDevice] = field(default_factory=list)
    latency_s: float = 0.0  # one request/answer round trip
    bandwidth_bps: float | None = None  # bytes/s of a large send; None when not measured

    @property
    def free(self) -> int:
        return sum(d.free for d in self.devices)

    @property
    def total(self) -> int:
        return sum(d.total for d in self.devices)


def parse_endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not host:port")
    return host.strip("[]"), int(port)


class _Connection:
    def __init__(self, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint
        host, port = parse_endpoint(endpoint)
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as error:
            raise WorkerUnreachable(endpoint, f"cannot connect ({error.strerror or error})") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, cmd: int, payload: bytes = b"") -> None:
        self.sock.sendall(struct.pack("<BQ", cmd, len(payload)) + payload)

    def call(self, cmd: int, payload: bytes, answer_size: int) -> bytes:
        self.send(cmd, payload)
        size = struct.unpack("<Q", self._read(8))[0]
        if size != answer_size:
            raise WorkerUnreachable(self.endpoint, f"unexpected answer to command {cmd}")
        return self._read(size)

    def _read(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise WorkerUnreachable(self.endpoint, "it closed the connection")
            data += chunk
        return bytes(data)

    def close(self) -> None:
        self.sock.close()


def probe(endpoint: str, *, timeout: float = 5.0, measure_bandwidth: bool = False) -> WorkerInfo:
    """Connect, check the protocol version, read each device's memory; optionally time a large send.
    A worker serves one client at a time, so a worker busy with another r1local times out here."""
    conn = _Connection(endpoint, timeout)
    try:
        try:
            major, minor, patch = conn.call(CMD_HELLO, bytes(CONN_CAPS), 4 + CONN_CAPS)[:3]
        except TimeoutError:
            raise WorkerUnreachable(endpoint, "no answer (is it serving another client?)") from None
        if major != PROTO_MAJOR:
            raise WorkerUnreachable(
                endpoint,
                f"it speaks RPC protocol {major}.{minor}.{patch}, "
                f"this build speaks {PROTO_MAJOR}.x (build both from the same llama-cpp-python)",
            )
        info = WorkerInfo(endpoint, f"{major}.{minor}.{patch}")
        count = struct.unpack("<I", conn.call(CMD_DEVICE_COUNT, b"", 4))[0]
        for index in range(count):
            start = time.perf_counter()
            free, total = struct.unpack("<QQ", conn.call(CMD_GET_DEVICE_MEMORY, struct.pack("<I", index), 16))
            info.latency_s = time.perf_counter() - start
            info.devices.append(RemoteDevice(index, free, total))
        info.latency_s = min(info.latency_s, _round_trip(conn))
        if measure_bandwidth and count:
            info.bandwidth_bps = _bandwidth(conn, info.latency_s)
        return info
    except OSError as error:
        raise WorkerUnreachable(endpoint, f"connection failed ({error.strerror or error})") from None
    finally:
        conn.close()


def _round_trip(conn: _Connection) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        conn.call(CMD_GET_DEVICE_MEMORY, struct.pack("<I", 0), 16)
        best = min(best, time.perf_counter() - start)
    return best


def _bandwidth(conn: _Connection, latency_s: float, tries: int = 3) -> float:
    """The best of a few tensor uploads into a scratch buffer on device 0 (freed afterwards)."""
    n = BANDWIDTH_PROBE_BYTES
    remote, _size = struct.unpack("<QQ", conn.call(CMD_ALLOC_BUFFER, struct.pack("<IQ", 0, n), 16))
    try:
        base = struct.unpack("<Q", conn.call(CMD_BUFFER_GET_BASE, struct.pack("<Q", remote), 8))[0]
        tensor = RPC_TENSOR.pack(
            1,
            GGML_TYPE_I8,
            remote,
            n,
            1,
            1,
            1,
            1,
            n,
            n,
            n,
            0,
            *([0] * 16),
            0,
            *([0] * 10),
            0,
            0,
            base,
            b"r1local-bandwidth",
            0,
        )
        payload = tensor + b"\0" + struct.pack("<Q", 0) + bytes(n)
        elapsed = float("inf")
        for _ in range(tries):
            start = time.perf_counter()
            conn.send(CMD_SET_TENSOR, payload)
            conn.call(CMD_GET_DEVICE_MEMORY, struct.pack("<I", 0), 16)  # answered once the upload is in
            elapsed = min(elapsed, time.perf_counter() - start)
    finally:
        conn.send(CMD_FREE_BUFFER, struct.pack("<Q", remote))
    return len(payload) / max(elapsed - latency_s, 1e-6)


def reachable(endpoint: str, timeout: float = 1.0) -> bool:
    """Whether something listens at the endpoint (a TCP connect: it does not disturb the client a
    worker is serving)."""
    try:
        with socket.create_connection(parse_endpoint(endpoint), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False
