"""Presets, as Ollama users make models: the real ollama client's create (from a model, with a
system prompt, parameters and messages) and copy, then chat with the preset; /api/tags, /api/show,
/v1/models and delete; a Modelfile through `r1local create`, `cp`, `ls` and `rm`."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest
from serving import openai_client, serving
from typer.testing import CliRunner

from r1local import presets
from r1local.cli import app

MODEL = "tiny-r1-qwen"


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model) as base:
        yield base


def test_the_ollama_client_creates_copies_chats_with_and_deletes_a_preset(url):
    client = ollama.Client(host=url)
    client.create(
        model="pirate",
        from_=MODEL,
        system="You are a pirate.",
        stream=False,
        parameters={"temperature": 0, "num_predict": 5, "stop": ["\n\n\n"]},
        messages=[{"role": "user", "content": "Ahoy"}, {"role": "assistant", "content": "Arr"}],
    )
    client.copy("pirate", "pirate:copy")
    names = {m.model for m in client.list().models}
    assert {"pirate:latest", "pirate:copy", MODEL} <= names
    assert {"pirate:latest", "pirate:copy"} <= {m.id for m in openai_client(url).models.list().data}
    assert 'SYSTEM """You are a pirate."""' in client.show("pirate:copy").modelfile
    raw = httpx.post(f"{url}/api/show", json={"model": "pirate"}).json()
    assert raw["system"] == "You are a pirate." and "temperature 0" in raw["parameters"]
    assert raw["details"]["parent_model"] == MODEL and "FROM tiny-r1-qwen" in raw["modelfile"]
    # the preset's parameters apply (num_predict 5, greedy), and its prompt is longer than the base's
    reply = client.chat(model="pirate", messages=[{"role": "user", "content": "Hi"}], think=False)
    base = client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        think=False,
        options={"temperature": 0, "num_predict": 5},
    )
    again = client.chat(model="pirate:copy", messages=[{"role": "user", "content": "Hi"}], think=False)
    assert reply.eval_count == 5 and reply.message.content == again.message.content
    assert reply.prompt_eval_count > base.prompt_eval_count
    # what the request sets wins over the preset
    longer = client.chat(
        model="pirate", messages=[{"role": "user", "content": "Hi"}], think=False, options={"num_predict": 7}
    )
    assert longer.eval_count == 7
    # every dialect reads the preset
    chat = openai_client(url).chat.completions.create(
        model="pirate", messages=[{"role": "user", "content": "Hi"}], extra_body={"think": False}
    )
    assert chat.usage.completion_tokens == 5 and chat.usage.prompt_tokens == reply.prompt_eval_count
    client.delete("pirate:copy")
    assert "pirate:copy" not in {m.model for m in client.list().models}
    with pytest.raises(ollama.ResponseError) as missing:
        client.create(model="ghost", from_="nobody-here", stream=False)
    assert missing.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as bad:
        client.create(model="../escape", from_=MODEL, stream=False)
    assert bad.value.status_code == 400
    client.delete("pirate")


def test_a_modelfile_through_the_command_line(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("R1LOCAL_HOME", str(tmp_path / "home"))
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        f'FROM {tiny_model}\nSYSTEM """You are terse.\nVery terse."""\n'
        'PARAMETER temperature 0.2\nPARAMETER stop "<end>"\nPARAMETER stop "###"\n'
        "MESSAGE user Hello\nMESSAGE assistant Hi\n"
    )
    runner = CliRunner()
    created = runner.invoke(app, ["create", "terse", "-f", str(modelfile)])
    assert created.exit_code == 0, created.output
    preset = presets.find("terse")
    assert preset.system == "You are terse.\nVery terse." and preset.parameters == {
        "temperature": 0.2,
        "stop": ["<end>", "###"],
    }
    assert preset.messages == [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"}]
    # `run` loads the base model and reads the preset's system prompt and messages
    prompts = []
    for name in ("terse", str(tiny_model)):
        ran = runner.invoke(app, ["run", name, "Hi", "--max-tokens", "2", "--json", "--local", "--ctx", "512"])
        assert ran.exit_code in (0, 20), ran.output
        prompts.append(json.JSONDecoder().raw_decode(ran.output[ran.output.index("{") :])[0]["usage"]["prompt_tokens"])
    assert prompts[0] > prompts[1]
    assert runner.invoke(app, ["cp", "terse", "terse:two"]).exit_code == 0
    listed = runner.invoke(app, ["ls"]).output
    assert "terse:latest" in listed and "terse:two" in listed
    assert runner.invoke(app, ["rm", "terse:two"]).exit_code == 0 and presets.find("terse:two") is None
    broken = tmp_path / "Broken"
    broken.write_text("SYSTEM hi\n")
    failed = runner.invoke(app, ["create", "x", "-f", str(broken)])
    assert failed.exit_code == 2 and "FROM" in failed.output
    go = tmp_path / "GoModelfile"
    go.write_text(f'FROM {tiny_model}\nTEMPLATE """{{{{ .System }}}} {{{{ .Prompt }}}}"""\n')
    failed = runner.invoke(app, ["create", "y", "-f", str(go)])
    assert failed.exit_code == 2 and "Go template" in failed.output and "Traceback" not in failed.output


BRACKETS = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{{ 'padding ' * 40 }}[reply]"


def test_a_presets_jinja_template_renders_its_prompts_and_a_go_template_is_refused(url):
    client = ollama.Client(host=url)
    client.create(model="brackets", from_=MODEL, template=BRACKETS, parameters={"num_predict": 2}, stream=False)
    assert httpx.post(f"{url}/api/show", json={"model": "brackets"}).json()["template"] == BRACKETS
    hi = [{"role": "user", "content": "Hi"}]
    prompt = httpx.post(f"{url}/apply-template", json={"model": "brackets", "messages": hi}).json()["prompt"]
    assert prompt == "[user] Hi\n" + "padding " * 40 + "[reply]"
    base = httpx.post(f"{url}/apply-template", json={"model": MODEL, "messages": hi}).json()["prompt"]
    assert "<｜User｜>Hi" in base  # the model's own template for the model itself
    # a chat with the preset reads the prompt its template makes, on every dialect
    own = client.chat(model="brackets", messages=hi, think=False)
    plain = client.chat(model=MODEL, messages=hi, think=False, options={"num_predict": 2})
    assert own.prompt_eval_count > plain.prompt_eval_count + 35
    chat = openai_client(url).chat.completions.create(model="brackets", messages=hi, extra_body={"think": False})
    assert chat.usage.prompt_tokens == own.prompt_eval_count
    # Ollama's Go templates are refused at create time, naming what is taken instead
    with pytest.raises(ollama.ResponseError) as go:
        client.create(model="gotmpl", from_=MODEL, template="{{ if .System }}{{ .System }}{{ end }}{{ .Prompt }}")
    assert go.value.status_code == 400 and "Go template" in str(go.value) and "Jinja" in str(go.value)
    with pytest.raises(ollama.ResponseError) as broken:
        client.create(model="broken", from_=MODEL, template="{% for m in messages %}")
    assert broken.value.status_code == 400 and "not a valid Jinja chat template" in str(broken.value)
    client.delete("brackets")


def test_a_presets_parameters_win_over_the_command_lines_defaults_not_over_its_options(
    tiny_model, tmp_path, monkeypatch
):
    """`run`/`chat` without --temperature sample as the preset says (greedy here: the same text
    whatever the seed); a --temperature given wins over the preset's."""
    monkeypatch.setenv("R1LOCAL_HOME", str(tmp_path / "home"))
    presets.create("greedy", str(tiny_model), parameters={"temperature": 0})
    runner = CliRunner()
    fast = ["--max-tokens", "12", "--local", "--ctx", "256", "--threads", "1", "--no-think"]

    def text(command: str, *options: str) -> str:
        if command == "run":
            result = runner.invoke(app, ["run", "greedy", "Hi", "--json", *fast, *options])
            assert result.exit_code in (0, 20), result.output
            return json.JSONDecoder().raw_decode(result.output[result.output.index("{") :])[0]["content"]
        result = runner.invoke(app, ["chat", "greedy", *fast, *options], input="Hi\n/bye\n")
        assert result.exit_code == 0, result.output
        return result.stdout

    shown = runner.invoke(app, ["chat", "greedy", *fast], input="/show\n/bye\n")
    assert "temperature  0.0 (the preset's)" in shown.stdout and "top_p        0.95" in shown.stdout
    for command in ("run", "chat"):
        assert text(command, "--seed", "1") == text(command, "--seed", "2")  # the preset's temperature 0
        given = [text(command, "--seed", str(seed), "--temperature", "1.5") for seed in (1, 2, 3)]
        assert len(set(given)) > 1  # the option given wins: sampled
