"""Anthropic's Messages API through the real anthropic client: whole and streamed replies with R1's
reasoning as thinking blocks, a tool round trip through tool_result, a thinking budget, stop
sequences, count_tokens, the x-api-key header, and unknown model names (404 in Anthropic's shape,
or mapped with --alias)."""

from __future__ import annotations

from dataclasses import replace

import anthropic
import httpx
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server

MODEL = "tiny-r1-qwen"
HI = [{"role": "user", "content": "Hi"}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    },
}
NO_THINKING = {"type": "disabled"}
GREEDY = {"temperature": 0}  # this SDK no longer sends sampling fields; the API still takes them


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    settings = replace(
        TEST_SETTINGS, models=(str(tiny_model),), api_key="sesame", aliases=(("claude-sonnet-4", MODEL),)
    )
    with isolated_store(tmp_path_factory.mktemp("store")), running_server(settings) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    return anthropic.Anthropic(base_url=url, api_key="sesame", max_retries=0)


def test_a_whole_message_carries_the_reasoning_as_a_thinking_block(client):
    message = client.messages.create(model=MODEL, max_tokens=24, messages=HI, extra_body=GREEDY)
    assert message.type == "message" and message.role == "assistant" and message.model == MODEL
    assert message.content[0].type == "thinking" and message.content[0].thinking
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 24
    assert message.usage.input_tokens + message.usage.cache_read_input_tokens > 0


def test_a_streamed_message_in_anthropics_event_order(client):
    with client.messages.stream(
        model=MODEL, max_tokens=24, messages=HI, extra_body=GREEDY, thinking={"type": "enabled", "budget_tokens": 8}
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and kinds[-2] == "message_delta"
    starts = [e for e in events if e.type == "content_block_start"]
    stops = [e for e in events if e.type == "content_block_stop"]
    assert [s.index for s in starts] == [s.index for s in stops] == list(range(len(final.content)))
    # the budget closed the reasoning: a thinking block, then the answer's text
    assert [b.type for b in final.content] == ["thinking", "text"]
    thinking = "".join(
        e.delta.thinking for e in events if e.type == "content_block_delta" and e.delta.type == "thinking_delta"
    )
    assert thinking == final.content[0].thinking and final.content[1].text
    whole = client.messages.create(
        model=MODEL, max_tokens=24, messages=HI, extra_body=GREEDY, thinking={"type": "enabled", "budget_tokens": 8}
    )
    assert [b.model_dump() for b in whole.content] == [b.model_dump() for b in final.content]
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 24


def test_a_tool_round_trip_through_tool_result(client):
    ask = [{"role": "user", "content": "Weather in Oslo for 2 days?"}]
    first = client.messages.create(
        model=MODEL,
        max_tokens=200,
        messages=ask,
        tools=[WEATHER],
        extra_body=GREEDY,
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        thinking=NO_THINKING,
    )
    assert first.stop_reason == "tool_use"
    [call] = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "get_weather" and set(call.input) == {"city", "days"} and call.id
    reply = ask + [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": f"Sunny in {call.input['city']}"}],
        },
    ]
    second = client.messages.create(
        model=MODEL,
        max_tokens=8,
        messages=reply,
        tools=[WEATHER],
        tool_choice={"type": "none"},
        thinking=NO_THINKING,
        extra_body=GREEDY,
    )
    assert second.stop_reason == "max_tokens" and [b.type for b in second.content] == ["text"]
    assert (
        second.usage.input_tokens + second.usage.cache_read_input_tokens
        > first.usage.input_tokens + first.usage.cache_read_input_tokens
    )


def test_a_streamed_call_arrives_as_input_json_deltas(client):
    with client.messages.stream(
        model=MODEL,
        max_tokens=200,
        messages=[{"role": "user", "content": "Rome?"}],
        tools=[WEATHER],
        thinking=NO_THINKING,
        extra_body=GREEDY,
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    pieces = [
        e.delta.partial_json for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(pieces) > 3  # the arguments form piece by piece
    [call] = [b for b in final.content if b.type == "tool_use"]
    assert call.name == "get_weather" and call.input["city"] in ("Paris", "Rome", "Oslo")
    assert final.stop_reason == "tool_use"


def test_stop_sequences_end_the_answer_and_are_named(client):
    plain = client.messages.create(model=MODEL, max_tokens=12, messages=HI, thinking=NO_THINKING, extra_body=GREEDY)
    text = plain.content[0].text
    stop = text[len(text) // 2 :][:3]
    stopped = client.messages.create(
        model=MODEL, max_tokens=12, messages=HI, thinking=NO_THINKING, extra_body=GREEDY, stop_sequences=[stop]
    )
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == stop
    assert stopped.content[0].text == text[: text.index(stop)]


def test_count_tokens_matches_what_a_message_reads(client):
    system = "Answer briefly."
    counted = client.messages.count_tokens(model=MODEL, messages=HI, system=system, tools=[WEATHER])
    message = client.messages.create(model=MODEL, max_tokens=1, messages=HI, system=system, tools=[WEATHER])
    assert counted.input_tokens == message.usage.input_tokens + message.usage.cache_read_input_tokens > 0
    bare = client.messages.count_tokens(model=MODEL, messages=HI)
    assert 0 < bare.input_tokens < counted.input_tokens


def test_keys_unknown_models_and_aliases(url, client):
    with pytest.raises(anthropic.AuthenticationError) as refused:
        anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0).messages.create(
            model=MODEL, max_tokens=1, messages=HI
        )
    assert refused.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as unknown:
        client.messages.create(model="claude-opus-4-1", max_tokens=1, messages=HI)
    assert unknown.value.body["type"] == "error" and unknown.value.body["error"]["type"] == "not_found_error"
    assert client.messages.create(model="claude-sonnet-4", max_tokens=2, messages=HI).stop_reason == "max_tokens"
    bad = httpx.post(
        f"{url}/v1/messages",
        headers={"x-api-key": "sesame", "anthropic-version": "2023-06-01"},
        json={"model": MODEL, "messages": HI},
    )  # no max_tokens
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    image = [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]
    with pytest.raises(anthropic.BadRequestError, match="image"):
        client.messages.create(model=MODEL, max_tokens=1, messages=image)


def test_claude_codes_requests_system_turns_and_tools_past_a_grammars_bounds(client):
    """What Claude Code sends: system messages mid-conversation, adaptive thinking, fields of its
    own, and tools whose schemas pass a grammar's bounds (its two dozen tools' together do; here one
    enum): calls are then read unconstrained; forcing one needs the grammar and is a 400 naming the bound."""
    big = [{"name": "pick", "input_schema": {"type": "object", "properties": {"n": {"enum": list(range(65))}}}}]
    messages = [{"role": "user", "content": "Hi"}, {"role": "system", "content": "Be brief."}]
    message = client.messages.create(
        model=MODEL,
        max_tokens=4,
        messages=messages,
        tools=big,
        thinking={"type": "adaptive"},
        extra_body={"context_management": {"edits": []}},
    )
    assert message.stop_reason == "max_tokens"
    with pytest.raises(anthropic.BadRequestError, match="too large"):
        client.messages.create(model=MODEL, max_tokens=4, messages=messages, tools=big, tool_choice={"type": "any"})
