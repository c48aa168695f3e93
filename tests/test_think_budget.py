"""The reasoning budget: once the reasoning reaches it, the engine writes the end of the think
block and the model answers; usage counts the reasoning tokens. Per request on both dialects,
from reasoning_effort, and with a forced tool call that follows the closed reasoning."""

from __future__ import annotations

import json

import ollama
import pytest
from serving import openai_client, serving

from r1local.request import EFFORT_BUDGETS

MODEL = "tiny-r1-qwen"
ASK = [{"role": "user", "content": "How many primes are below 30?"}]


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    return openai_client(url)


@pytest.mark.parametrize("budget", [1, 7, 30])
def test_the_budget_is_respected_exactly_and_an_answer_follows(client, budget):
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=budget + 40, temperature=0, extra_body={"reasoning_budget_tokens": budget}
    )
    message, usage = reply.choices[0].message, reply.usage
    assert usage.completion_tokens_details.reasoning_tokens == budget
    assert message.reasoning_content.endswith("Time is up; I will answer now.")
    assert message.content and reply.choices[0].finish_reason == "length"


def test_without_a_budget_the_reasoning_runs_on(client):
    reply = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=40, temperature=0)
    assert reply.usage.completion_tokens_details.reasoning_tokens == 40 and reply.choices[0].message.content == ""


def test_reasoning_effort_maps_to_documented_budgets(client):
    assert EFFORT_BUDGETS == {"minimal": 256, "low": 1024, "medium": 4096, "high": None}
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=300, temperature=0, reasoning_effort="minimal"
    )
    assert reply.usage.completion_tokens_details.reasoning_tokens == 256 and reply.choices[0].message.content


def test_budget_zero_answers_at_once(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=5, temperature=0, extra_body={"reasoning_budget_tokens": 0}
    )
    assert reply.usage.completion_tokens_details.reasoning_tokens == 0 and reply.choices[0].message.content


def test_ollama_option(url):
    reply = ollama.Client(host=url).chat(
        model=MODEL, messages=ASK, think=True, options={"think_budget": 5, "num_predict": 30, "temperature": 0}
    )
    assert reply.message.thinking.endswith("Time is up; I will answer now.") and reply.message.content


def test_a_forced_call_follows_the_closed_reasoning(client):
    tool = {
        "type": "function",
        "function": {
            "name": "count_primes",
            "parameters": {"type": "object", "properties": {"below": {"type": "integer"}}, "required": ["below"]},
        },
    }
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[tool],
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=200,
        temperature=0,
        extra_body={"reasoning_budget_tokens": 6},
    )
    message = reply.choices[0].message
    assert reply.usage.completion_tokens_details.reasoning_tokens == 6 and message.reasoning_content
    [call] = message.tool_calls
    assert call.function.name == "count_primes" and isinstance(json.loads(call.function.arguments)["below"], int)


def test_cli_think_budget(tiny_model):
    from typer.testing import CliRunner

    from r1local.cli import app
    from r1local.errors import MAX_TOKENS_EXIT

    result = CliRunner().invoke(
        app,
        [
            "run",
            str(tiny_model),
            "hello",
            "--json",
            "--think-budget",
            "4",
            "--max-tokens",
            "30",
            "--temperature",
            "0",
            "--ctx",
            "256",
            "--threads",
            "1",
        ],
    )
    assert result.exit_code in (0, MAX_TOKENS_EXIT), result.output  # the answer may run to --max-tokens
    reply = json.loads(result.stdout)
    assert reply["usage"]["reasoning_tokens"] == 4 and reply["reasoning"].endswith("Time is up; I will answer now.")
    assert reply["content"]
