"""Chat templates: the real DeepSeek-R1-Distill template with R1's rules, and plain templates."""

from __future__ import annotations

import time

import pytest

from r1local.engine import template_sandbox
from r1local.engine.template import ChatTemplate
from r1local.errors import ModelFileError, UsageError
from r1local.gguf_meta import read_gguf

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"


@pytest.fixture(scope="module")
def r1_source(r1_header) -> str:
    return read_gguf(r1_header, require_complete=False).chat_template


@pytest.fixture(scope="module")
def r1(r1_source) -> ChatTemplate:
    return ChatTemplate(r1_source, BOS, EOS)


def test_real_template_is_recognised_as_r1(r1):
    assert r1.is_r1 and not r1.is_fallback


def test_thinking_on_forces_the_answer_to_start_with_think(r1):
    p = r1.render([{"role": "user", "content": "Hi"}])
    assert p.text == f"{BOS}<｜User｜>Hi<｜Assistant｜><think>\n"
    assert p.opens_think


def test_thinking_off_renders_an_empty_think_block(r1):
    p = r1.render([{"role": "user", "content": "Hi"}], think=False)
    assert p.text == f"{BOS}<｜User｜>Hi<｜Assistant｜><think>\n\n</think>\n\n"
    assert not p.opens_think


def test_earlier_reasoning_is_dropped_from_history(r1):
    messages = [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"},
        {"role": "user", "content": "and 3+3?"},
        {"role": "assistant", "content": "6", "reasoning_content": "add those too"},
        {"role": "user", "content": "thanks"},
    ]
    p = r1.render(messages)
    assert p.text == (
        f"{BOS}<｜User｜>2+2?<｜Assistant｜>4{EOS}<｜User｜>and 3+3?<｜Assistant｜>6{EOS}"
        "<｜User｜>thanks<｜Assistant｜><think>\n"
    )


def test_system_prompt_is_folded_into_the_first_user_turn(r1):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
    ]
    p = r1.render(messages)
    assert p.text == (f"{BOS}<｜User｜>Be brief.\n\nHi<｜Assistant｜>Hello{EOS}<｜User｜>Bye<｜Assistant｜><think>\n")


def test_content_parts_are_joined(r1):
    parts = [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]
    assert r1.render([{"role": "user", "content": parts}]).text.startswith(f"{BOS}<｜User｜>Hello<")


def test_without_generation_prompt_nothing_is_opened(r1):
    p = r1.render([{"role": "user", "content": "Hi"}], add_generation_prompt=False)
    assert p.text == f"{BOS}<｜User｜>Hi" and not p.opens_think


@pytest.mark.parametrize("think", [True, False])
def test_newer_template_that_opens_think_itself_gets_it_once(r1_source, think):
    tail = "{{'<｜Assistant｜>'}}{% endif %}"
    assert r1_source.endswith(tail)
    newer = ChatTemplate(r1_source[: -len(tail)] + "{{'<｜Assistant｜><think>\\n'}}{% endif %}", BOS, EOS)
    p = newer.render([{"role": "user", "content": "Hi"}], think=think)
    assert p.text.count("<think>") == 1
    assert p.text.endswith("<think>\n" if think else "<think>\n\n</think>\n\n")


CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_other_templates_render_as_is():
    t = ChatTemplate(CHATML, "<s>", "</s>")
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "<think>x</think>"}]
    p = t.render(messages, think=False)
    assert not t.is_r1
    assert p.text == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n<think>x</think><|im_end|>\n<|im_start|>assistant\n"
    )
    assert not p.opens_think


def test_missing_template_without_a_builtin_falls_back_to_chatml():
    t = ChatTemplate(None)
    assert t.is_fallback and not t.is_r1
    assert t.render([{"role": "user", "content": "Hi"}]).text == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_template_raise_exception_is_a_usage_error():
    t = ChatTemplate("{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}")
    with pytest.raises(UsageError, match="first must be user"):
        t.render([{"role": "assistant", "content": "x"}])


def test_template_is_sandboxed():
    t = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(UsageError):
        t.render([{"role": "user", "content": "x"}])


# Templates a hostile GGUF may carry, and the one line each becomes.
HOSTILE_TEMPLATES = {
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}": "ran longer than",
    '{{ "x" * 3000000000 }}': "MiB of memory",
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}": "recursed without end",
    '{% for a in range(100000) %}{{ "y" * 1000 }}{% endfor %}': "its output passed",
    '{{ 1 + "a" }}': "TypeError",
}


@pytest.mark.parametrize("source", HOSTILE_TEMPLATES)
def test_a_hostile_template_is_one_line_within_its_bounds(source, monkeypatch):
    monkeypatch.setattr(template_sandbox, "RENDER_TIMEOUT_S", 1.0)
    template = ChatTemplate(source)
    for _ in range(2):  # and again, in the child that replaced a killed one
        start = time.perf_counter()
        expected = f"chat template failed on these messages: .*{HOSTILE_TEMPLATES[source]}"
        with pytest.raises(UsageError, match=expected) as e:
            template.render([{"role": "user", "content": "Hi"}])
        assert "\n" not in str(e.value) and time.perf_counter() - start < 10
    template.close()


def test_a_template_renders_again_after_a_failure(monkeypatch):
    monkeypatch.setattr(template_sandbox, "RENDER_TIMEOUT_S", 1.0)
    template = ChatTemplate(
        "{% if messages[0].content == 'loop' %}{% for a in range(100000) %}"
        "{% for b in range(100000) %}{% endfor %}{% endfor %}{% endif %}{{ messages[0].content }}"
    )
    with pytest.raises(UsageError, match="ran longer"):
        template.render([{"role": "user", "content": "loop"}])
    assert template.render([{"role": "user", "content": "fine"}], add_generation_prompt=False).text == "fine"


def test_a_template_nested_too_deeply_to_parse_is_a_model_file_error():
    with pytest.raises(ModelFileError, match="nests too deeply"):
        ChatTemplate("{{ " + "(" * 100_000 + "1" + ")" * 100_000 + " }}")


def test_broken_template_is_a_model_file_error():
    with pytest.raises(ModelFileError, match="not valid Jinja"):
        ChatTemplate("{% for %}")


def test_a_final_assistant_message_is_continued(r1):
    ask = [{"role": "user", "content": "Hi"}]
    answer = r1.render([*ask, {"role": "assistant", "content": "Hello, I"}])
    assert answer.text == f"{BOS}<｜User｜>Hi<｜Assistant｜><think>\n\n</think>\n\nHello, I" and not answer.opens_think
    reasoning = r1.render([*ask, {"role": "assistant", "content": "", "reasoning_content": "The user greets"}])
    assert reasoning.text.endswith("<｜Assistant｜><think>\nThe user greets") and reasoning.opens_think
    closed = r1.render([*ask, {"role": "assistant", "content": "<think>\nok\n</think>\n\nHel"}])
    assert closed.text.endswith("<｜Assistant｜><think>\nok\n</think>\n\nHel") and not closed.opens_think
    new_turn = r1.render([*ask, {"role": "assistant", "content": "Hello"}], continue_final=False)
    assert new_turn.text.endswith(f"Hello{EOS}<｜Assistant｜><think>\n")


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_tools_and_tool_history_render_in_r1_tokens(r1):
    assert r1.supports_tools
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "assistant", "content": "It is 18C."},
        {"role": "user", "content": "And Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [call, {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}}],
        },
        {"role": "tool", "content": "20C"},
        {"role": "tool", "content": "21C"},
    ]
    text = r1.render(messages, tool_list=[WEATHER]).text
    preamble, _, history = text.partition("Be brief.")
    assert preamble.startswith(f"{BOS}<｜User｜>You can call any of the following function tools")
    assert '"name": "get_weather"' in preamble
    call_paris = (
        '<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{"city": "Paris"}\n```<｜tool▁call▁end｜>'
    )
    call_rome = call_paris.replace("Paris", "Rome")
    assert history == (
        "\n\nWeather in Paris?"
        f"<｜Assistant｜><｜tool▁calls▁begin｜>{call_paris}<｜tool▁calls▁end｜>{EOS}"
        f"<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18C<｜tool▁output▁end｜><｜tool▁outputs▁end｜>{EOS}"
        f"<｜Assistant｜>It is 18C.{EOS}<｜User｜>And Rome?"
        f"<｜Assistant｜><｜tool▁calls▁begin｜>{call_paris}\n{call_rome}<｜tool▁calls▁end｜>{EOS}"
        "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>20C<｜tool▁output▁end｜>"
        f"\n<｜tool▁output▁begin｜>21C<｜tool▁output▁end｜><｜tool▁outputs▁end｜>{EOS}"
        "<｜Assistant｜><think>\n"
    )


def test_a_template_without_tool_calls_refuses_tools():
    with pytest.raises(UsageError, match="no tool calling"):
        ChatTemplate(CHATML).render([{"role": "user", "content": "Hi"}], tool_list=[WEATHER])


def test_no_template_uses_llama_cpps_builtin_for_the_architecture():
    from r1local.engine.builtin_template import builtin_name

    vocab = {"<start_of_turn>", "<|eot_id|>"}
    assert builtin_name("gemma3", vocab.__contains__) == "gemma"
    assert builtin_name("llama", vocab.__contains__) == "llama3"
    assert builtin_name("llama", set().__contains__) == "llama2"
    assert builtin_name("qwen2", vocab.__contains__) == "chatml"
    gemma = ChatTemplate(None, builtin="gemma")
    assert gemma.render([{"role": "user", "content": "Hi"}], think=False).text == (
        "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    )
    assert "<|im_end|>" not in gemma.render([{"role": "user", "content": "Hi"}]).text
