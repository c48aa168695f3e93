"""The Responses API's store keeps the latest responses only, by count and by size."""

from __future__ import annotations

from r1local.server.response_store import ResponseStore


def turn(i: int, text: str = "") -> tuple[dict, list[dict]]:
    return {"id": f"resp_{i}", "output": []}, [{"role": "user", "content": text or f"question {i}"}]


def test_the_oldest_go_first_by_count_and_by_size():
    store = ResponseStore(max_responses=3, max_chars=10_000)
    for i in range(5):
        store.put(*turn(i))
    assert [store.get(f"resp_{i}") is not None for i in range(5)] == [False, False, True, True, True]
    store.put(*turn(5, "x" * 6000))
    store.put(*turn(6, "y" * 6000))  # both together pass the size bound: only the newest stays
    assert store.get("resp_5") is None and store.get("resp_6").conversation[0]["content"] == "y" * 6000
    assert store.delete("resp_6") and not store.delete("resp_6") and store.get("resp_6") is None
    store.put(*turn(7))
    assert store.get("resp_7") is not None  # the size count went back down with the deletions
