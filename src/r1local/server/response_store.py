"""The Responses API's stored responses, kept in memory while the server runs and bounded: the
oldest go first once there are MAX_RESPONSES or MAX_CHARS of them, so `previous_response_id`
reaches back over recent turns only, and a restart forgets them all."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass

MAX_RESPONSES = 256
MAX_CHARS = 64 * 1024 * 1024  # of stored conversation text, all responses together


@dataclass(frozen=True)
class Stored:
    response: dict  # as GET /v1/responses/{id} answers
    conversation: list[dict]  # the chat messages up to and including its answer, for the next turn
    chars: int


class ResponseStore:
    def __init__(self, max_responses: int = MAX_RESPONSES, max_chars: int = MAX_CHARS) -> None:
        self.max_responses = max_responses
        self.max_chars = max_chars
        self._items: OrderedDict[str, Stored] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def put(self, response: dict, conversation: list[dict]) -> None:
        chars = len(json.dumps(conversation, ensure_ascii=False)) + len(json.dumps(response, ensure_ascii=False))
        with self._lock:
            self._drop(response["id"])
            self._items[response["id"]] = Stored(response, conversation, chars)
            self._chars += chars
            while len(self._items) > self.max_responses or (self._chars > self.max_chars and len(self._items) > 1):
                self._drop(next(iter(self._items)))

    def get(self, response_id: str) -> Stored | None:
        with self._lock:
            return self._items.get(response_id)

    def delete(self, response_id: str) -> bool:
        with self._lock:
            return self._drop(response_id)

    def _drop(self, response_id: str) -> bool:
        stored = self._items.pop(response_id, None)
        if stored is not None:
            self._chars -= stored.chars
        return stored is not None
