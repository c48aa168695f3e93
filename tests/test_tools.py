"""Tool calls for R1 models: the call parser on streamed text, and through the real server with the
real openai and ollama clients: forced calls whose arguments the grammar makes valid, named
functions, streamed deltas, an agent loop, and a clear 400 for a model without tool calls."""

from __future__ import annotations

import json
from typing import Literal

import httpx
import ollama
import openai
import pytest
from serving import openai_client, serving

from r1local.engine.events import ContentDelta, ReasoningDelta, ToolCall, ToolCallDelta
from r1local.engine.tools import ToolCallParser

MODEL = "tiny-r1-qwen"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]}, "days": {"type": "integer"}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
            "required": ["zone"],
        },
    },
}
FORCED = {
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "max_tokens": 200,
    "temperature": 0,
    "extra_body": {"think": False},
}
CALL = (
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
    '{"city": "Paris", "days": 2}\n```<｜tool▁call▁end｜>'
)


def test_parser_takes_calls_out_of_text_cut_anywhere():
    text = (
        "Let me check.\n"
        + CALL
        + "\n"
        + CALL.replace("Paris", "Rome").replace("<｜tool▁calls▁begin｜>", "")
        + "<｜tool▁calls▁end｜>"
    )
    for size in (1, 3, 7, len(text)):
        parser, events = ToolCallParser(), []
        for i in range(0, len(text), size):
            events += parser.route([ContentDelta(text[i : i + size])])
        events += parser.route([], final=True)
        content = "".join(e.text for e in events if isinstance(e, ContentDelta))
        calls = [e for e in events if isinstance(e, ToolCall)]
        assert content == "Let me check.\n"
        assert [(c.index, c.name, json.loads(c.arguments)) for c in calls] == [
            (0, "get_weather", {"city": "Paris", "days": 2}),
            (1, "get_weather", {"city": "Rome", "days": 2}),
        ]
        assert len({c.id for c in calls}) == 2
        # each call forms first: its name, then its arguments piece by piece, under the id it ends with
        for call in calls:
            deltas = [e for e in events if isinstance(e, ToolCallDelta) and e.index == call.index]
            assert deltas[0].arguments == "" and {(d.id, d.name) for d in deltas} == {(call.id, call.name)}
            assert json.loads("".join(d.arguments for d in deltas)) == json.loads(call.arguments)
            assert size >= 7 or len(deltas) > 3  # cut small, the arguments come in many pieces
            assert events.index(deltas[-1]) < events.index(call)


def test_parser_finds_a_call_the_model_wrote_inside_its_reasoning():
    parser = ToolCallParser()
    events = parser.route([ReasoningDelta("I should call it. " + CALL)], final=True)
    assert [type(e) for e in events] == [ReasoningDelta, ToolCallDelta, ToolCallDelta, ToolCall]
    assert events[0].text == "I should call it. " and events[2].arguments == '{"city": "Paris", "days": 2}'


def test_parser_leaves_text_that_only_looks_like_a_marker():
    parser = ToolCallParser()
    events = parser.route([ContentDelta("a <｜tool")]) + parser.route([ContentDelta(" b")], final=True)
    assert "".join(e.text for e in events) == "a <｜tool b"


@pytest.fixture(scope="module")
def url(tiny_model, plain_model, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model, plain_model, max_loaded=2) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    return openai_client(url)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def check_weather_call(call) -> dict:
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    arguments = json.loads(call.function.arguments)
    assert set(arguments) == {"city", "days"} and arguments["city"] in ("Paris", "Rome", "Oslo")
    assert isinstance(arguments["days"], int)
    return arguments


def test_a_required_call_is_valid_for_its_schema(client):
    reply = client.chat.completions.create(model=MODEL, messages=ask("Weather in Paris?"), tools=[WEATHER], **FORCED)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    check_weather_call(call)


def test_a_named_function_is_the_one_called(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ask("What time is it?"),
        tools=[WEATHER, TIME],
        **{**FORCED, "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
    )
    [call] = reply.choices[0].message.tool_calls
    assert call.function.name == "get_time" and json.loads(call.function.arguments)["zone"] in ("UTC", "CET")


def test_streamed_calls_arrive_as_they_form(client):
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=ask("Weather in Rome?"), tools=[WEATHER], stream=True, **FORCED
        )
    )
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert {d.index for d in deltas} == {0} and len(deltas) > 3  # the arguments come in pieces, as llama-server's
    assert deltas[0].id and deltas[0].function.name == "get_weather" and deltas[0].function.arguments == ""
    assert all(d.id is None and d.function.name is None for d in deltas[1:])
    arguments = "".join(d.function.arguments for d in deltas)
    check_weather_call(
        deltas[0].model_copy(update={"function": deltas[0].function.model_copy(update={"arguments": arguments})})
    )
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_an_agent_loop_calls_gets_the_result_and_answers(client):
    messages = ask("Weather in Oslo for 2 days?")
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], **FORCED)
    message = first.choices[0].message
    arguments = check_weather_call(message.tool_calls[0])
    messages += [
        message.model_dump(exclude_none=True),
        {
            "role": "tool",
            "tool_call_id": message.tool_calls[0].id,
            "content": json.dumps({"city": arguments["city"], "forecast": "sunny"}),
        },
    ]
    second = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER],
        tool_choice="none",
        max_tokens=8,
        temperature=0,
        extra_body={"think": False},
    )
    assert second.choices[0].finish_reason == "length" and second.choices[0].message.content
    assert second.usage.prompt_tokens > first.usage.prompt_tokens


def test_tools_on_a_model_without_tool_calls_are_a_clear_400(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="tiny-plain", messages=ask("Hi"), tools=[WEATHER], max_tokens=4)
    assert "does not support tools" in refused.value.message and refused.value.body["param"] == "tools"


def test_a_tool_choice_naming_an_unknown_function_is_a_400(client):
    with pytest.raises(openai.BadRequestError, match="not in tools"):
        client.chat.completions.create(
            model=MODEL,
            messages=ask("Hi"),
            tools=[WEATHER],
            max_tokens=4,
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )


def test_ollama_client_sends_tools_and_tool_history(url):
    client = ollama.Client(host=url)
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 1}}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]
    reply = client.chat(
        model=MODEL, messages=history, tools=[WEATHER], think=False, options={"num_predict": 6, "temperature": 0}
    )
    assert reply.done and reply.message.role == "assistant" and reply.eval_count == 6


def test_ollama_shape_of_a_call(url):
    body = {
        "model": MODEL,
        "messages": ask("Weather in Paris?"),
        "tools": [WEATHER],
        "think": False,
        "tool_choice": "required",
        "stream": False,
        "options": {"temperature": 0, "num_predict": 200},
    }
    reply = ollama.ChatResponse.model_validate(httpx.post(f"{url}/api/chat", json=body, timeout=60).json())
    [call] = reply.message.tool_calls
    assert call.function.name == "get_weather" and call.function.arguments["city"] in ("Paris", "Rome", "Oslo")
    # streamed, as Ollama streams them: each call whole, in one chunk, once it is complete
    chunks = [
        ollama.ChatResponse.model_validate_json(line)
        for line in httpx.post(
            f"{url}/api/chat", json={**body, "stream": True, "parallel_tool_calls": False}, timeout=60
        ).text.splitlines()
    ]
    calls = [c for chunk in chunks for c in chunk.message.tool_calls or []]
    assert len(calls) == 1 and set(calls[0].function.arguments) == {"city", "days"}


def test_langchain_bind_tools_agent_loop(url):
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: Literal["Paris", "Rome", "Oslo"], days: int) -> str:
        """The weather in a city for the next days."""
        return f"sunny in {city} for {days} days"

    llm = ChatOpenAI(
        base_url=f"{url}/v1",
        api_key="unused",
        model=MODEL,
        temperature=0,
        max_tokens=200,
        max_retries=0,
        extra_body={"think": False},
    )
    messages = [HumanMessage("Weather in Paris?")]
    reply = llm.bind_tools([get_weather], tool_choice="required", parallel_tool_calls=False).invoke(messages)
    [call] = reply.tool_calls
    assert call["name"] == "get_weather" and call["args"]["city"] in ("Paris", "Rome", "Oslo")
    messages += [reply, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    answer = llm.bind_tools([get_weather], tool_choice="none").invoke(messages, max_tokens=6)
    assert answer.content and not answer.tool_calls
