"""Long chats: when a conversation does not leave room for the reply, its oldest turns leave
first, as Ollama does; the system prompt and the last user message always stay."""

from __future__ import annotations

from collections.abc import Callable


def reply_room(n_ctx: int, max_tokens: int | None) -> int:
    """Tokens kept free for the reply: what it asked for, or a quarter of the context (R1 thinks
    at length), never more than half."""
    return min(max_tokens or n_ctx // 4, n_ctx // 2)


def turns(messages: list[dict]) -> list[range]:
    """The turns that may go, oldest first: a message that is not a system prompt, with the replies
    and tool results after it, all before the last user message."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    found, i = [], 0
    while i < last_user:
        if messages[i].get("role") == "system":
            i += 1
            continue
        end = i + 1
        while end < last_user and messages[end].get("role") not in ("user", "system"):
            end += 1
        found.append(range(i, end))
        i = end
    return found


def trim(messages: list[dict], count: Callable[[list[dict]], int], limit: int) -> tuple[list[dict], int]:
    """The fewest oldest turns dropped for the prompt to fit `limit` tokens (found by bisection:
    a few renders even for a long chat), and how many messages went. When nothing fits, every
    turn that may go is dropped and the prompt is as short as it gets."""
    if count(messages) <= limit:
        return messages, 0
    droppable = turns(messages)

    def without(k: int) -> list[dict]:
        gone = {i for turn in droppable[:k] for i in turn}
        return [m for i, m in enumerate(messages) if i not in gone]

    low, high = 1, len(droppable)  # invariant: dropping `high` turns fits, or nothing does
    while low < high:
        middle = (low + high) // 2
        if count(without(middle)) <= limit:
            high = middle
        else:
            low = middle + 1
    kept = without(high)
    return kept, len(messages) - len(kept)
