"""The real `openai` client against a real server: chat and completions, streamed and not,
reasoning_content, usage, JSON response formats, and concurrent streams in one batch."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import openai
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server

MODEL = "tiny-r1-qwen"
GREEDY = {"temperature": 0, "max_tokens": 12}


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    settings = replace(TEST_SETTINGS, models=(str(tiny_model),), parallel=4)
    with isolated_store(tmp_path_factory.mktemp("store")), running_server(settings) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list().data] == [MODEL]


def test_chat_returns_reasoning_apart_from_the_answer(client):
    reply = client.chat.completions.create(model=MODEL, messages=ask("Why is the sky blue?"), **GREEDY)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert choice.finish_reason == "length"
    # an R1 prompt opens <think>: a random-weight model never closes it, so all of it is reasoning
    assert choice.message.reasoning_content and choice.message.content == ""
    assert reply.usage.completion_tokens == 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 12


def test_thinking_off_answers_directly(client):
    for switch in ({"reasoning_effort": "none"}, {"extra_body": {"think": False}}):
        reply = client.chat.completions.create(model=MODEL, messages=ask("Hi"), **GREEDY, **switch)
        message = reply.choices[0].message
        assert message.content and getattr(message, "reasoning_content", None) is None


def test_stream_has_one_id_reasoning_deltas_and_usage_last(client):
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=ask("Why is the sky blue?"),
            stream=True,
            stream_options={"include_usage": True},
            **GREEDY,
        )
    )
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    whole = client.chat.completions.create(model=MODEL, messages=ask("Why is the sky blue?"), **GREEDY)
    assert reasoning == whole.choices[0].message.reasoning_content
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    assert all(c.usage is None for c in chunks[:-1])


def test_completions_streamed_and_not(client):
    whole = client.completions.create(model=MODEL, prompt="Once upon a time", **GREEDY)
    assert whole.object == "text_completion" and whole.choices[0].finish_reason == "length"
    pieces = list(client.completions.create(model=MODEL, prompt="Once upon a time", stream=True, **GREEDY))
    assert "".join(p.choices[0].text for p in pieces) == whole.choices[0].text != ""


def test_json_schema_response_format_is_enforced(client):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ask("Is water wet? Answer in JSON."),
        temperature=0,
        max_tokens=40,
        response_format={"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}},
    )
    assert json.loads(reply.choices[0].message.content)["answer"] in ("yes", "no")
    assert reply.choices[0].finish_reason == "stop"


def test_json_object_response_format_starts_an_object(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=ask("JSON please"), temperature=0, max_tokens=8, response_format={"type": "json_object"}
    )
    assert reply.choices[0].message.content.lstrip().startswith("{")


def test_stop_sequences_and_seed(client):
    first = client.chat.completions.create(model=MODEL, messages=ask("Go"), seed=7, temperature=1.0, max_tokens=10)
    again = client.chat.completions.create(model=MODEL, messages=ask("Go"), seed=7, temperature=1.0, max_tokens=10)
    assert first.choices[0].message.reasoning_content == again.choices[0].message.reasoning_content
    text = first.choices[0].message.reasoning_content
    stop = text.strip()[2:5]
    stopped = client.chat.completions.create(
        model=MODEL, messages=ask("Go"), seed=7, temperature=1.0, max_tokens=10, stop=[stop]
    )
    assert stop not in (stopped.choices[0].message.reasoning_content or "")
    assert stopped.choices[0].finish_reason == "stop"


def test_four_concurrent_streams_each_equal_their_solo_output(url, client):
    prompts = ["Tell me about cats.", "What is 2+2?", "Name a colour.", "Write a haiku."]
    solo = [
        client.chat.completions.create(model=MODEL, messages=ask(p), **GREEDY).choices[0].message.reasoning_content
        for p in prompts
    ]

    async def stream(aclient: openai.AsyncOpenAI, prompt: str) -> str:
        chunks = await aclient.chat.completions.create(model=MODEL, messages=ask(prompt), stream=True, **GREEDY)
        return "".join([getattr(c.choices[0].delta, "reasoning_content", None) or "" async for c in chunks])

    async def together() -> list[str]:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as aclient:
            return await asyncio.gather(*(stream(aclient, p) for p in prompts))

    assert asyncio.run(together()) == solo


def test_async_client_not_streamed(url):
    async def once():
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused") as aclient:
            return await aclient.chat.completions.create(model=MODEL, messages=ask("Hi"), **GREEDY)

    reply = asyncio.run(once())
    assert reply.choices[0].message.reasoning_content and reply.usage.completion_tokens == 12
