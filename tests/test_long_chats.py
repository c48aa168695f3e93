"""Long chats: a conversation three times the context keeps going with its oldest turns dropped
(said in a header and in usage), unless the request or the server asks for the hard error;
Ollama's num_ctx caps a request or is refused when it asks for more than is loaded."""

from __future__ import annotations

import httpx
import ollama
import pytest
from serving import serving

from r1local.engine.history import trim, turns

MODEL = "tiny-r1-qwen"


def long_chat(turns: int = 24) -> list[dict]:
    messages = [{"role": "system", "content": "You are terse."}]
    for i in range(turns):
        messages += [
            {"role": "user", "content": f"Question {i}: " + "tell me more " * 10},
            {"role": "assistant", "content": f"Answer {i}: " + "here is more " * 10},
        ]
    return messages + [{"role": "user", "content": "And finally?"}]


def test_trim_drops_the_fewest_oldest_turns_and_keeps_system_and_last_question():
    messages = long_chat(5)
    size = lambda kept: sum(len(m["content"]) for m in kept)  # noqa: E731
    for limit in (10_000, 1200, 700, 200, 5):
        kept, dropped = trim(messages, size, limit)
        assert kept[0] == messages[0] and kept[-1] == messages[-1] and dropped % 2 == 0
        assert kept[1:-1] == messages[1 + dropped : -1]  # whole turns, oldest first
        assert size(kept) <= limit or dropped == 10  # as short as it gets when nothing fits
        assert dropped == 0 or size(messages[:1] + messages[dropped - 1 :]) > limit  # one turn fewer would not fit
    assert turns([messages[0], messages[-1]]) == []


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model) as base:
        yield base


def test_a_chat_three_times_the_context_keeps_going(url):
    body = {"model": MODEL, "messages": long_chat(), "max_tokens": 8, "temperature": 0}
    count = httpx.post(f"{url}/tokenize", json={"model": MODEL, "content": str(body["messages"])}).json()
    assert len(count["tokens"]) > 3 * 512
    reply = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    dropped = int(reply.headers["x-trimmed-messages"])
    usage = reply.json()["usage"]
    assert dropped > 0 and dropped % 2 == 0 and usage["trimmed_messages"] == dropped
    assert usage["prompt_tokens"] + 8 <= 512 and usage["completion_tokens"] == 8
    streamed = httpx.post(
        f"{url}/api/chat", json={"model": MODEL, "messages": long_chat(), "options": {"num_predict": 4}}
    )
    assert int(streamed.headers["x-trimmed-messages"]) == dropped


def test_truncate_false_restores_the_hard_error(url):
    body = {"model": MODEL, "messages": long_chat(), "max_tokens": 8, "truncate": False}
    reply = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "context_length_exceeded"


def test_no_trim_server_refuses_long_chats(tiny_model, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model, trim=False) as base:
        reply = httpx.post(f"{base}/api/chat", json={"model": MODEL, "messages": long_chat(), "stream": False})
    assert reply.status_code == 400 and "context holds 512" in reply.json()["error"]


def test_num_ctx_caps_the_request_or_is_refused(url):
    client = ollama.Client(host=url)
    # a random tiny model may sample its end token first: every seed must respect the cap, and one
    # of a few must run into it
    reasons = []
    for seed in range(4):
        options = {"num_ctx": 256, "num_predict": 400, "seed": seed}
        reply = client.chat(model=MODEL, messages=long_chat(), options=options)
        assert reply.prompt_eval_count + reply.eval_count <= 256
        reasons.append(reply.done_reason)
        if reply.done_reason == "length":
            break
    assert reasons[-1] == "length", reasons
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(model=MODEL, messages=long_chat(1), options={"num_ctx": 4096})
    assert refused.value.status_code == 400 and "--ctx 4096" in refused.value.error
