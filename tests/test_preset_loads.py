"""A preset's load settings: a draft model (or n-gram lookup) with its bounds and a KV cache type,
made with the real ollama client's create or a Modelfile's PARAMETER lines, kept in the preset,
shown by /api/show, and used when the preset's model loads: by the server (its own copy of the
model, beside the base's) and by run/chat/bench in this process."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest
from serving import serving
from typer.testing import CliRunner

from r1local import presets
from r1local.cli import app

LONG = "tiny-r1-qwen-long"  # heads of 128: its cache can be q8_0


@pytest.fixture(scope="module")
def url(tiny_model_long, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model_long, max_loaded=3) as base:
        yield base


def test_the_server_loads_a_presets_model_with_its_draft_and_kv_type(url):
    client = ollama.Client(host=url)
    client.create(
        model="quick",
        from_=LONG,
        parameters={
            "draft": LONG,
            "draft_max": 8,
            "draft_p_min": 0,  # the random-weight tiny model is never sure of its guesses
            "kv_type": "q8_0",
            "temperature": 0,
            "num_predict": 24,
        },
        stream=False,
    )
    shown = httpx.post(f"{url}/api/show", json={"model": "quick"}).json()
    assert 'draft "tiny-r1-qwen-long"' in shown["parameters"] and 'kv_type "q8_0"' in shown["parameters"]
    assert (
        "draft_max 8" in shown["parameters"]
        and "draft_p_min 0" in shown["parameters"]
        and 'PARAMETER draft "tiny-r1-qwen-long"' in shown["modelfile"]
    )
    hi = [{"role": "user", "content": "Say something long"}]
    drafted = client.chat(model="quick", messages=hi, think=False)
    plain = client.chat(model=LONG, messages=hi, think=False, options={"temperature": 0, "num_predict": 24})
    assert drafted.eval_count == 24 and drafted.message.content == plain.message.content  # the same greedy text
    loaded = {m["name"]: m for m in httpx.get(f"{url}/api/ps").json()["models"]}
    assert loaded["quick:latest"]["draft"] == LONG and loaded["quick:latest"]["kv_type"] == "q8_0"
    assert loaded[LONG]["kv_type"] == "f16" and "draft" not in loaded[LONG]  # the base's own copy: serve's settings
    metrics = httpx.get(f"{url}/metrics").text
    assert 'r1local_draft_tokens_total{model="quick:latest"}' in metrics
    # a draft or setting the server cannot honour is refused at create time
    for bad, status in (({"draft": "nobody-here"}, 404), ({"kv_type": "q5_1"}, 400), ({"spec": "eagle"}, 400)):
        with pytest.raises(ollama.ResponseError) as refused:
            client.create(model="bad", from_=LONG, parameters=bad, stream=False)
        assert refused.value.status_code == status
    with pytest.raises(ollama.ResponseError) as both:
        client.create(model="bad", from_=LONG, parameters={"draft": LONG, "spec": "ngram"}, stream=False)
    assert both.value.status_code == 400 and "choose one" in str(both.value)
    client.delete("quick")


def test_run_chat_and_bench_load_a_modelfiles_draft_and_kv_type(tiny_model, tiny_model_long, tmp_path, monkeypatch):
    monkeypatch.setenv("R1LOCAL_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        f"FROM {tiny_model_long}\nPARAMETER draft {tiny_model_long}\nPARAMETER draft_max 8\nPARAMETER draft_p_min 0\n"
        "PARAMETER kv_type q8_0\nPARAMETER temperature 0\n"
    )
    assert runner.invoke(app, ["create", "quick", "-f", str(modelfile)]).exit_code == 0
    assert presets.find("quick").parameters == {
        "draft": str(tiny_model_long),
        "draft_max": 8,
        "draft_p_min": 0.0,  # the random-weight tiny model is never sure of its guesses
        "kv_type": "q8_0",
        "temperature": 0.0,
    }
    fast = ["--max-tokens", "24", "--local", "--ctx", "512", "--threads", "1", "--no-think", "--json"]
    ran = runner.invoke(app, ["run", "quick", "Say something long", *fast])
    assert ran.exit_code in (0, 20), ran.output
    assert json.loads(ran.stdout)["timings"]["draft_n"] > 0  # the preset's draft drafted
    bench = runner.invoke(app, ["bench", "quick", "--json", "--pp", "8", "--tg", "16", "-r", "2", "--threads", "1"])
    assert bench.exit_code == 0, bench.output
    assert json.loads(bench.stdout)["draft_tokens"] > 0
    chat = runner.invoke(app, ["chat", "quick", *fast[:-1]], input="Hi\n/bye\n")
    assert chat.exit_code == 0, chat.output
    # the preset's kv_type reaches the load: the tiny model's heads of 8 cannot take q8_0 (one line)
    other = tmp_path / "Other"
    other.write_text(f"FROM {tiny_model}\nPARAMETER kv_type q8_0\n")
    assert runner.invoke(app, ["create", "narrow", "-f", str(other)]).exit_code == 0
    refused = runner.invoke(app, ["run", "narrow", "hi", *fast])
    assert refused.exit_code == 2 and "multiple of 32" in refused.output and "Traceback" not in refused.output
    # an option given wins over the preset's
    given = runner.invoke(app, ["run", "narrow", "hi", "--kv-type", "f16", *fast])
    assert given.exit_code in (0, 20), given.output


def test_run_through_a_resident_server_asks_it_for_the_preset(url, monkeypatch):
    """The command line sends the preset's name; the server applies the preset once and loads its
    own copy with its draft (the command loads nothing itself)."""
    from r1local.cli import backend

    monkeypatch.setenv("R1LOCAL_HOST", url)
    monkeypatch.setattr(backend, "open_model", lambda *a, **k: pytest.fail("loaded in the command's own process"))
    client = ollama.Client(host=url)
    client.create(
        model="resident",
        from_=LONG,
        system="Answer briefly.",
        parameters={"draft": LONG, "temperature": 0},
        messages=[{"role": "user", "content": "Ahoy"}, {"role": "assistant", "content": "Arr"}],
        stream=False,
    )
    fast = ["--max-tokens", "6", "--no-think", "--json"]
    ran = CliRunner().invoke(app, ["run", "resident", "Hi", *fast])
    assert ran.exit_code == 20, ran.output
    report = json.loads(ran.stdout)
    assert report["engine"] == "r1local serve"
    served = client.chat(model="resident", messages=[{"role": "user", "content": "Hi"}], think=False)
    assert report["usage"]["prompt_tokens"] == served.prompt_eval_count  # system and messages applied once
    loaded = {m["name"]: m for m in httpx.get(f"{url}/api/ps").json()["models"]}
    assert loaded["resident:latest"]["draft"] == LONG
    client.delete("resident")
