"""Evicted sequences' KV states kept in RAM, so a chat whose slot was taken by another request
does not recompute its whole history when it comes back (bounded, least recently used first)."""

from __future__ import annotations

import ctypes
from collections import OrderedDict

from .bindings import C
from .native import NativeModel

MIN_TOKENS = 256  # shorter prefixes are cheaper to recompute than to copy


def seq_state(native: NativeModel, seq: int, limit: int | None = None) -> ctypes.Array | None:
    """A copy of a sequence's cells (None if it would pass `limit` bytes or llama.cpp refused)."""
    size = C.llama_state_seq_get_size(native.ctx, seq)
    if limit is not None and size > limit:
        return None
    data = (ctypes.c_uint8 * size)()
    return data if C.llama_state_seq_get_data(native.ctx, data, size, seq) == size else None


def load_state(native: NativeModel, data: ctypes.Array, seq: int) -> bool:
    """Replace a sequence's cells with a copy; False (and the sequence empty) if llama.cpp refused."""
    native.forget(seq)
    if C.llama_state_seq_set_data(native.ctx, data, len(data), seq) == 0:
        native.forget(seq)
        return False
    return True


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PrefixCache:
    def __init__(self, native: NativeModel, capacity_bytes: int) -> None:
        self.native = native
        self.capacity = capacity_bytes
        self.used = 0
        self._entries: OrderedDict[tuple[int, ...], ctypes.Array] = OrderedDict()
        self.hits = 0

    def save(self, seq: int, tokens: list[int]) -> None:
        """Copy a sequence's cells out before they are overwritten."""
        if len(tokens) < MIN_TOKENS or self.capacity <= 0:
            return
        key = tuple(tokens)
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        data = seq_state(self.native, seq, self.capacity)
        if data is None:
            return
        self._entries[key] = data
        self.used += len(data)
        while self.used > self.capacity:
            _, old = self._entries.popitem(last=False)
            self.used -= len(old)

    def longest(self, prompt: list[int]) -> tuple[int, tuple[int, ...] | None]:
        """The cached prefix sharing the most tokens with prompt, and how many."""
        best, best_key = 0, None
        for key in self._entries:
            n = common_prefix(list(key), prompt)
            if n > best:
                best, best_key = n, key
        return best, best_key

    def restore(self, key: tuple[int, ...], seq: int) -> list[int] | None:
        """Load a cached state into seq; returns its tokens, or None if llama.cpp refused."""
        data = self._entries.pop(key)
        self.used -= len(data)
        if not load_state(self.native, data, seq):
            return None
        self.hits += 1
        return list(key)
