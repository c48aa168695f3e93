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
