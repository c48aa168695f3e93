"""OpenAI's Responses API through the real openai client and the openai Agents SDK: whole and
streamed responses (R1's reasoning as a reasoning item, OpenAI's event order), a function-tool
round trip through function_call_output, text.format with a JSON schema, previous_response_id
over the stored responses, GET and DELETE, and an agent run to completion with a function tool."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import openai
import pytest
from serving import openai_client, serving

MODEL = "tiny-r1-qwen"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    },
}
FORCED = {
    "tools": [WEATHER],
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "reasoning": {"effort": "none"},
    "temperature": 0,
    "max_output_tokens": 200,
}


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    return openai_client(url)


def test_a_whole_response_with_a_reasoning_item(client):
    response = client.responses.create(model=MODEL, input="Hi", max_output_tokens=16, temperature=0)
    assert response.object == "response" and response.model == MODEL and response.output[0].type == "reasoning"
    assert response.output[0].content[0].text and response.usage.output_tokens == 16
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens_details.reasoning_tokens == 16


def test_a_streamed_response_in_openais_event_order(client):
    body = {
        "model": MODEL,
        "input": [{"role": "user", "content": "Hi"}],
        "max_output_tokens": 12,
        "temperature": 0,
        "reasoning": {"effort": "none"},
    }
    events = list(client.responses.create(**body, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[-1].response.status == "incomplete"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    whole = client.responses.create(**body)
    assert text == whole.output_text and events[-1].response.output_text == text
    with client.responses.stream(**body) as stream:  # the SDK's own accumulator
        assert stream.get_final_response().output_text == text


def test_a_function_call_round_trip_through_function_call_output(client):
    first = client.responses.create(model=MODEL, input="Weather in Oslo for 2 days?", **FORCED)
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id
    arguments = json.loads(call.arguments)
    assert set(arguments) == {"city", "days"} and arguments["city"] in ("Paris", "Rome", "Oslo")
    follow = [
        {"role": "user", "content": "Weather in Oslo for 2 days?"},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"},
    ]
    second = client.responses.create(
        model=MODEL,
        input=follow,
        tools=[WEATHER],
        tool_choice="none",
        reasoning={"effort": "none"},
        max_output_tokens=8,
        temperature=0,
    )
    assert [item.type for item in second.output] == ["message"] and second.output_text
    assert second.usage.input_tokens > first.usage.input_tokens
    # streamed, the arguments form piece by piece
    events = list(client.responses.create(model=MODEL, input="Rome?", stream=True, **FORCED))
    pieces = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    [done] = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(pieces) > 3 and json.loads("".join(pieces)) == json.loads(done.arguments)
    assert events[-1].type == "response.completed" and events[-1].response.output[0].arguments == done.arguments


def test_text_format_json_schema_shapes_the_answer(client):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=MODEL,
        input="Is the sky blue?",
        max_output_tokens=40,
        temperature=0,
        text={"format": {"type": "json_schema", "name": "verdict", "schema": schema}},
    )
    assert response.status == "completed" and json.loads(response.output_text)["answer"] in ("yes", "no")


def test_previous_response_id_retrieve_and_delete(client):
    first = client.responses.create(
        model=MODEL, input="My name is Ada.", max_output_tokens=6, reasoning={"effort": "none"}, temperature=0
    )
    second = client.responses.create(
        model=MODEL,
        input="What is my name?",
        previous_response_id=first.id,
        max_output_tokens=6,
        reasoning={"effort": "none"},
        temperature=0,
    )
    alone = client.responses.create(
        model=MODEL, input="What is my name?", max_output_tokens=6, reasoning={"effort": "none"}, temperature=0
    )
    # the second turn read the first one's question and answer
    assert second.usage.input_tokens >= alone.usage.input_tokens + first.usage.input_tokens - 2
    assert second.previous_response_id == first.id
    assert client.responses.retrieve(first.id).output_text == first.output_text
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError, match="not kept"):
        client.responses.create(model=MODEL, input="x", previous_response_id=first.id)
    unstored = client.responses.create(model=MODEL, input="x", max_output_tokens=1, store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_hosted_tools_are_left_out_and_other_inputs_get_clear_400s(client):
    # Codex and the Agents SDK send hosted tools beside their functions: the functions still work
    response = client.responses.create(
        model=MODEL, input="Rome?", **{**FORCED, "tools": [{"type": "web_search"}, WEATHER]}
    )
    assert [item.type for item in response.output] == ["function_call"] and response.output[0].name == "get_weather"
    with pytest.raises(openai.BadRequestError, match="input_image"):
        client.responses.create(
            model=MODEL,
            input=[{"role": "user", "content": [{"type": "input_image", "image_url": "http://example.com/a.png"}]}],
        )


def test_the_agents_sdk_runs_an_agent_with_a_function_tool_to_completion(url):
    from agents import (
        Agent,
        ModelSettings,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai.types.shared import Reasoning

    set_tracing_disabled(True)
    asked: list[str] = []

    @function_tool
    def get_weather(city: Literal["Paris", "Rome", "Oslo"]) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"Sunny in {city}"

    agent = Agent(
        name="Forecaster",
        instructions="Answer with the weather.",
        tools=[get_weather],
        model=OpenAIResponsesModel(
            model=MODEL, openai_client=openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        ),
        # the tiny model would neither choose the tool by itself nor stop writing (the SDK takes an
        # answer cut at max_tokens for a failure): the call is forced and its result is the answer
        model_settings=ModelSettings(
            tool_choice="required",
            max_tokens=200,
            temperature=0,
            reasoning=Reasoning(effort="none"),
            parallel_tool_calls=False,
        ),
        tool_use_behavior="stop_on_first_tool",
    )
    result = asyncio.run(Runner.run(agent, "Weather in Paris?", max_turns=2))
    assert len(asked) == 1 and asked[0] in ("Paris", "Rome", "Oslo")
    assert [item.type for item in result.new_items] == ["tool_call_item", "tool_call_output_item"]
    assert result.final_output == f"Sunny in {asked[0]}"
