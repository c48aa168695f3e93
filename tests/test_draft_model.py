"""Speculative decoding with a draft model: the same greedy text, drafts batched over the slots,
llama.cpp's vocabulary check, --draft auto's choice from the catalog, the draft's memory counted."""

from __future__ import annotations

import struct

import pytest
from test_speculative import PROMPTS, generate, greedy, same_output
from typer.testing import CliRunner

from r1local import catalog
from r1local.cli import app
from r1local.engine.model import Model
from r1local.engine.speculative import Speculation
from r1local.errors import UsageError


def drafting(target, draft, **kw) -> Model:
    model = Model.load(
        target, n_ctx=512, n_parallel=4, n_threads=1, speculation=Speculation("draft", draft=str(draft), **kw)
    )
    # the tiny model's output head makes its rows dear: these tests want drafts, so rows stay cheap
    model.scheduler.step_cost.relative = lambda rows: 1 + 0.05 * (rows - 1)
    model.scheduler.step_cost.observe = lambda rows, seconds: None
    return model


@pytest.fixture(scope="module")
def expected(tiny_model):
    with Model.load(tiny_model, n_ctx=512, n_parallel=4, n_threads=1) as plain:
        return generate(plain, PROMPTS, greedy(64))


# The tiny random-weight models are rarely sure of a token (top probability ~0.14), so the default
# --draft-p-min would leave them nothing to draft: tests that want drafts verified pass p_min=0.


def test_a_model_drafting_for_itself_is_accepted_whole_and_changes_nothing(tiny_model, expected):
    with drafting(tiny_model, tiny_model, p_min=0) as model:
        got = generate(model, PROMPTS, greedy(64))
        assert model.describe()["draft"] == tiny_model.stem
        ram, _ = model.memory_bytes()
        assert ram > 2 * model.placement.host_bytes * 0.9  # the draft's weights and cache are counted too
    same_output(got, expected)
    drafted = sum(r.done.timings.draft_n for r in got)
    assert drafted > 64 and sum(r.done.timings.draft_n_accepted for r in got) >= 0.95 * drafted


def test_a_draft_that_is_always_wrong_changes_nothing_and_stops_drafting(tiny_model, tiny_model_b, expected):
    with drafting(tiny_model, tiny_model_b, p_min=0) as model:
        got = generate(model, PROMPTS, greedy(64))
    same_output(got, expected)
    drafted = sum(r.done.timings.draft_n for r in got)
    assert 0 < drafted < 4 * 64  # drafting paused once the guesses kept failing


def test_a_draft_that_is_never_sure_proposes_nothing_and_is_seldom_asked(tiny_model, tiny_model_b, expected):
    with drafting(tiny_model, tiny_model_b) as model:  # the default p_min, llama.cpp's 0.75
        assert model.draft.p_min == 0.75
        propose, asked = model.draft.propose, []

        def counted(wanted):
            asked.append(sum(length for _, _, length in wanted))
            return propose(wanted)

        model.draft.propose = counted
        got = generate(model, PROMPTS, greedy(64))
    same_output(got, expected)
    assert sum(r.done.timings.draft_n for r in got) <= 4  # (almost) no token is sure enough
    steps = 64  # at least: four sequences of 64 tokens, a token each per step
    # each decline backs the slot off as a refused token does (measured: 19 asks; 62 without backing off)
    assert 0 < len(asked) < steps // 2


def test_p_min_ends_each_draft_at_its_first_unsure_token(tiny_model, expected):
    with Model.load(
        tiny_model, n_ctx=512, n_parallel=2, n_threads=1, speculation=Speculation("draft", draft=str(tiny_model))
    ) as model:
        draft, prompt = model.draft, model.tokenize("The quick brown fox", add_special=True)
        draft.p_min = 0
        every = draft.propose([(0, prompt, 6), (1, prompt[:-1], 6)])
        assert [len(d) for d in every] == [6, 6]
        draft.p_min = 1  # no softmax of random weights puts all of its mass on one token
        assert draft.propose([(0, prompt, 6), (1, prompt[:-1], 6)]) == [[], []]


def test_a_draft_of_another_vocabulary_is_refused_in_one_line(tiny_model, tmp_path):
    data = tiny_model.read_bytes()
    with Model.load(tiny_model, n_ctx=64, n_threads=1) as model:
        text = model.native.token_text(1000).encode()
    entry = struct.pack("<Q", len(text)) + text
    assert data.count(entry) == 1
    other = tmp_path / "other-vocab.gguf"
    other.write_bytes(data.replace(entry, struct.pack("<Q", len(text)) + text[::-1]))
    with pytest.raises(UsageError, match="cannot draft for .*token 1000 differs"):
        Model.load(tiny_model, n_ctx=64, n_threads=1, speculation=Speculation("draft", draft=str(other)))
    result = CliRunner().invoke(
        app, ["run", str(tiny_model), "hi", "--draft", str(other), "--ctx", "64", "--threads", "1", "--max-tokens", "4"]
    )
    assert result.exit_code == 2 and "token 1000 differs" in result.output and "Traceback" not in result.output
    both = CliRunner().invoke(app, ["run", str(tiny_model), "hi", "--draft", str(tiny_model), "--spec", "ngram"])
    assert both.exit_code == 2 and "choose one" in both.output


@pytest.mark.parametrize("command", ["run", "chat", "bench", "serve"])
def test_draft_p_min_out_of_range_is_a_one_line_usage_error(tiny_model, command):
    args = [command, str(tiny_model), *(["hi"] if command == "run" else []), "--draft", str(tiny_model)]
    result = CliRunner().invoke(app, [*args, "--draft-p-min", "1.5"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "--draft-p-min 1.5" in lines[0] and "0 to 1" in lines[0], result.output
    with pytest.raises(UsageError, match="--draft-p-min"):
        Speculation(p_min=-0.1)


def test_draft_auto_is_the_1_5b_for_the_qwen_distills_and_no_llama():
    known = catalog.load()
    for size in (7.6e9, 14.8e9, 32.8e9):
        assert known.draft_for("qwen2", int(size), "x.gguf") == "r1:1.5b"
    with pytest.raises(UsageError, match="Llama 3's vocabulary"):
        known.draft_for("llama", int(8e9), "DeepSeek-R1-Distill-Llama-8B-Q4_K_M.gguf")
    with pytest.raises(UsageError, match="smallest distill"):
        known.draft_for("qwen2", int(1.8e9), "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf")
    with pytest.raises(UsageError, match="--draft MODEL"):
        known.draft_for("gemma3", int(2.7e8), "gemma.gguf")


def test_bench_reports_the_drafts_kept(tiny_model):
    import json

    fast = ["--pp", "8", "--tg", "32", "-r", "2", "--threads", "1", "--draft", str(tiny_model), "--draft-p-min", "0"]
    result = CliRunner().invoke(app, ["bench", str(tiny_model), "--json", *fast])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["draft_tokens"] > 0 and report["draft_accepted"] >= 0.9 * report["draft_tokens"]
    table = CliRunner().invoke(app, ["bench", str(tiny_model), *fast])
    assert table.exit_code == 0 and "drafts kept (tg32)" in table.stdout


def test_the_server_names_the_draft_and_counts_its_memory(tiny_model, tmp_path_factory):
    import httpx
    from serving import serving

    sizes = {}
    for draft in (None, Speculation("draft", draft=str(tiny_model))):
        with serving(tmp_path_factory, tiny_model, speculation=draft) as url:
            (entry,) = httpx.get(f"{url}/api/ps").json()["models"]
            sizes[draft is not None] = entry["size"]
            assert entry.get("draft") == (tiny_model.stem if draft else None)
    assert sizes[True] > 1.8 * sizes[False]  # the draft's weights and cache on top of the model's


def test_the_memory_check_counts_the_draft(tiny_model, tiny_model_b):
    from test_fit import machine

    from r1local.server import ServerSettings
    from r1local.server.memory import plan

    hw = machine("container-2cpu-2gb")
    alone = plan(tiny_model, ServerSettings(ctx=512, parallel=2), hw)
    drafted = ServerSettings(ctx=512, parallel=2, speculation=Speculation("draft", draft=str(tiny_model_b)))
    both = plan(tiny_model, drafted, hw)
    assert both.cpu_bytes > 1.8 * alone.cpu_bytes and "its draft tiny-r1-qwen-b needs" in both.reason
    hw.memory.available = int((alone.cpu_bytes + both.cpu_bytes) / 2 / 0.9)  # room for the model, not both
    assert plan(tiny_model, ServerSettings(ctx=512, parallel=2), hw).fits
    assert not plan(tiny_model, drafted, hw).fits
