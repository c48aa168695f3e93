"""Every form of model name parses in names.py, to the same address wherever it is typed."""

from __future__ import annotations

import re
from pathlib import Path, PurePath

import pytest

from r1local.errors import ModelNotFound, UsageError
from r1local.names import Kind, ModelAddress
from r1local.resolve import resolve

SRC = Path(__file__).resolve().parents[1] / "src" / "r1local"

CASES = [
    # text, kind, expected fields (name is the normalised name, without the engine)
    ("r1", Kind.CHOICE, {"name": "r1", "policy": "r1"}),
    ("R1:latest", Kind.CHOICE, {"name": "r1", "policy": "r1"}),
    ("r1:best", Kind.CHOICE, {"name": "r1:best", "policy": "r1:best"}),
    ("r1:FAST", Kind.CHOICE, {"name": "r1:fast", "policy": "r1:fast"}),
    ("r1:npu", Kind.CHOICE, {"name": "r1:npu", "policy": "r1:npu"}),
    ("r1:7b", Kind.CATALOG, {"name": "r1:7b", "distill": "7b", "quant": None}),
    ("R1:7B-Q8_0", Kind.CATALOG, {"name": "r1:7b-q8_0", "distill": "7b", "quant": "Q8_0"}),
    ("r1:1.5b-npu", Kind.CATALOG, {"name": "r1:1.5b-npu", "distill": "1.5b", "quant": "NPU"}),
    ("deepseek-r1", Kind.CHOICE, {"name": "r1", "policy": "r1"}),
    ("deepseek-r1:latest", Kind.CHOICE, {"name": "r1"}),
    ("deepseek-r1:1.5b", Kind.CATALOG, {"name": "r1:1.5b", "distill": "1.5b", "quant": None}),
    ("deepseek-r1:7b", Kind.CATALOG, {"name": "r1:7b", "distill": "7b"}),
    ("deepseek-r1:70b", Kind.CATALOG, {"name": "r1:70b", "distill": "70b"}),
    ("deepseek-r1:7b-qwen-distill-q4_K_M", Kind.CATALOG, {"name": "r1:7b-q4_k_m", "distill": "7b", "quant": "Q4_K_M"}),
    ("deepseek-r1:8b-llama-distill-q4_K_M", Kind.CATALOG, {"name": "r1:8b-q4_k_m", "distill": "8b", "quant": "Q4_K_M"}),
    ("deepseek-r1:14b-qwen-distill-q8_0", Kind.CATALOG, {"name": "r1:14b-q8_0", "quant": "Q8_0"}),
    ("deepseek-r1:70b-llama-distill-fp16", Kind.CATALOG, {"name": "r1:70b-f16", "distill": "70b", "quant": "F16"}),
    ("DeepSeek-R1:32B-Qwen-Distill", Kind.CATALOG, {"name": "r1:32b", "distill": "32b", "quant": None}),
    ("hf.co/someone/Some-GGUF:q5_k_m", Kind.HUB, {"repo": "someone/Some-GGUF", "quant": "Q5_K_M", "filename": None}),
    ("https://huggingface.co/someone/Some-GGUF", Kind.HUB, {"repo": "someone/Some-GGUF", "quant": None}),
    ("someone/Some-GGUF/Some-Q8_0.gguf", Kind.HUB, {"repo": "someone/Some-GGUF", "filename": "Some-Q8_0.gguf"}),
    (
        "someone/Some-GGUF/Q8/Some-Q8_0-00001-of-00002.gguf",
        Kind.HUB,
        {"repo": "someone/Some-GGUF", "filename": "Q8/Some-Q8_0-00001-of-00002.gguf"},
    ),
    ("r1:7b@openvino", Kind.CATALOG, {"name": "r1:7b", "engine": "openvino", "served_name": "r1:7b@openvino"}),
    ("r1:7b@OpenVINO", Kind.CATALOG, {"engine": "openvino"}),
    ("tiny@llama.cpp", Kind.SERVED, {"name": "tiny", "engine": "llama.cpp", "served_name": "tiny@llama.cpp"}),
    ("tiny", Kind.SERVED, {"name": "tiny", "engine": None, "served_name": "tiny", "for_server": "tiny"}),
    ("tiny:latest", Kind.SERVED, {"name": "tiny"}),
    ("someone@example/model", Kind.SERVED, {"name": "someone@example/model", "engine": None}),
    ("@openvino", Kind.SERVED, {"name": "@openvino", "engine": None}),
    ("up/some-model", Kind.SERVED, {"upstream": None}),  # no upstream of that name is configured
    ("/models/tiny.gguf", Kind.PATH, {"path": PurePath("/models/tiny.gguf"), "on_disk": False, "served_name": "tiny"}),
    ("./tiny.gguf@openvino", Kind.PATH, {"engine": "openvino", "served_name": "tiny@openvino", "on_disk": False}),
    ("tiny.gguf", Kind.PATH, {"on_disk": False}),
    ("../../etc/passwd", Kind.PATH, {"on_disk": False}),
    ("~/models/x.gguf", Kind.PATH, {"on_disk": False}),
    ("C:\\models\\x.gguf", Kind.PATH, {"on_disk": False}),
]


@pytest.mark.parametrize(("text", "kind", "fields"), CASES, ids=[c[0] for c in CASES])
def test_every_name_form(text, kind, fields):
    address = ModelAddress.parse(text)
    assert address.kind is kind and address.text == text
    for field, value in fields.items():
        assert getattr(address, field) == value, field


def test_server_names_never_become_paths(tmp_path, monkeypatch):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.chdir(tmp_path)
    assert resolve(ModelAddress.parse(str(gguf), allow_paths=True)) == gguf
    assert resolve(ModelAddress.parse("model.gguf", allow_paths=True)) == gguf
    for name in (str(gguf), "model.gguf", "../x/y.gguf", "/etc/passwd", "a/../../b.gguf", "a/b/../c.gguf"):
        address = ModelAddress.parse(name)
        assert not address.on_disk
        with pytest.raises(ModelNotFound):
            resolve(address)
    with pytest.raises(ModelNotFound, match="No such file"):
        resolve(ModelAddress.parse("./missing.gguf", allow_paths=True))


def test_upstream_names_need_a_configured_upstream():
    address = ModelAddress.parse("up/some/model:tag", upstreams=("up", "other"))
    assert (address.kind, address.upstream, address.remote) == (Kind.UPSTREAM, "up", "some/model:tag")
    assert ModelAddress.parse("up/", upstreams=("up",)).kind is Kind.SERVED  # no model id


def test_a_file_is_a_path_only_where_paths_are_allowed(tiny_model, tmp_path, monkeypatch):
    on_cli = ModelAddress.parse(str(tiny_model), allow_paths=True)
    assert on_cli.kind is Kind.PATH and on_cli.on_disk and on_cli.path == tiny_model.resolve()
    assert on_cli.served_name == tiny_model.stem and on_cli.for_server == str(tiny_model.resolve())
    # over HTTP the same text is never checked on the disk: it can only match a file the server holds
    over_http = ModelAddress.parse(str(tiny_model))
    assert over_http.kind is Kind.PATH and not over_http.on_disk
    assert over_http.names_file(tiny_model.resolve()) and not over_http.names_file(tmp_path / tiny_model.name)
    # relative, from another folder: resolved to the same absolute file the server is asked for
    monkeypatch.chdir(tiny_model.parent)
    relative = ModelAddress.parse(f"{tiny_model.name}@openvino", allow_paths=True)
    assert relative.for_server == f"{tiny_model.resolve()}@openvino" and relative.engine == "openvino"
    assert ModelAddress.parse(tiny_model.name).names_file(tiny_model.resolve())  # a bare file name: by its name
    # a Hub-shaped name that is also a local file is the file on the command line, the Hub file elsewhere
    hub_shaped = tmp_path / "someone" / "Repo" / "x.gguf"
    hub_shaped.parent.mkdir(parents=True)
    hub_shaped.write_bytes(b"GGUF")
    monkeypatch.chdir(tmp_path)
    assert ModelAddress.parse("someone/Repo/x.gguf", allow_paths=True).kind is Kind.PATH
    assert ModelAddress.parse("someone/Repo/x.gguf").kind is Kind.HUB


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("", UsageError, "empty"),
        ("   ", UsageError, "empty"),
        ("r1:", UsageError, "names no distill"),
        ("deepseek-r1:8b-qwen-distill", ModelNotFound, "not a qwen distill"),
        ("deepseek-r1:7b-llama-distill-q4_K_M", ModelNotFound, "not a llama distill"),
    ],
)
def test_malformed_names_are_one_clear_error(text, error, words):
    with pytest.raises(error, match=words):
        ModelAddress.parse(text)


def test_unknown_names_say_which_forms_exist():
    cli = ModelAddress.parse("no-such-model", allow_paths=True).unknown()
    http = ModelAddress.parse("no-such-model").unknown()
    assert "Unknown model name: no-such-model." in str(cli) and "path to a .gguf" in str(cli)
    assert "path" not in str(http) and "deepseek-r1:7b" in str(http)
    assert "No such file: ./x.gguf" in str(ModelAddress.parse("./x.gguf", allow_paths=True).unknown())


def test_no_other_module_parses_model_names():
    """The grammar's telltales (the Hub host's pattern, the engine and upstream separators, Ollama's
    :latest) live in names.py only."""
    telltales = re.compile(r'hf\\\.co|partition\("[@/]"\)|":latest"')
    offenders = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p.name != "names.py" and telltales.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []
