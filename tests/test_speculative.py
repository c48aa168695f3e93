"""Speculative decoding in the scheduler: n-gram drafts, pacing, and verification that keeps the
target model's output (greedy: token for token) with grammars, stop strings, the reasoning budget
and logprobs, several slots verifying in one decode."""

from __future__ import annotations

import threading

import pytest

from r1local.engine.model import Model
from r1local.engine.params import SamplingParams
from r1local.engine.speculative import NgramIndex, Pacing, Speculation, StepCost
from r1local.errors import UsageError

PROMPTS = ["The capital of France is", "def fibonacci(n):", "1, 2, 3, 4,", "abc abc abc abc abc"]
N = 48


def greedy(max_tokens: int = N, **kw) -> SamplingParams:
    return SamplingParams(temperature=0, max_tokens=max_tokens, **kw)


def test_ngram_lookup_proposes_what_followed_the_latest_match_longest_first():
    index = NgramIndex([1, 2, 3, 4, 5, 9, 2, 3, 4, 6, 7])
    assert index.propose(8) == []  # "6 7" never came before
    for token in (8, 2, 3, 4):
        index.add(token)
    assert index.propose(3) == [6, 7, 8]  # "2 3 4" was last followed by 6, not by the older 5
    index.add(1)
    assert index.propose(4) == []  # "4 1" never came before
    longest = NgramIndex([2, 3, 4, 5, 9, 3, 4, 6, 2, 3, 4])
    assert longest.propose(2) == [5, 9]  # "2 3 4" -> 5 wins over the later "3 4" -> 6
    assert NgramIndex([5, 5]).propose(4) == []


def test_step_cost_is_measured_per_row_count_and_guessed_until_then():
    cost = StepCost()
    assert cost.relative(5) == 1 + 0.5 * 4  # nothing measured: half a step for each row beyond the first
    for rows, seconds in [(1, 0.100), (1, 0.100), (3, 0.160), (8, 0.300), (40, 0.900), (1, 0.100)]:
        cost.observe(rows, seconds)
    assert cost.relative(1) == pytest.approx(1.0)
    assert cost.relative(3) == pytest.approx(1.6)
    assert cost.relative(8) == pytest.approx(3.0)
    assert cost.relative(6) == 1 + 0.5 * 5  # row counts are timed one by one: 6 is not 8
    assert cost.relative(33) == cost.relative(64) == pytest.approx(9.0)  # past 32 rows, by powers of two
    assert cost.draft_relative() == 0.0  # no draft model measured yet
    cost.observe_draft(4, 0.200)  # a draft token as dear as half a step
    assert cost.draft_relative() == pytest.approx(0.5)


def test_a_draft_that_costs_a_whole_step_per_token_is_never_asked():
    pacing = Pacing(Speculation(draft="draft.gguf", source="draft"))
    pacing.acceptance = 1.0
    free_rows = lambda rows: 1.0  # noqa: E731  (verifying is free: only drafting costs)
    assert pacing.length(16, 1, 1, free_rows, draft_cost=0.05) == 16  # a small draft pays
    assert pacing.length(16, 1, 1, free_rows, draft_cost=1.0) == 0  # a draft as large as its target never does


def test_pacing_drafts_as_long_as_pays_and_steps_aside_when_it_does_not():
    pacing = Pacing(Speculation(draft_max=16, draft_min=2))
    pacing.acceptance = 0.95
    cheap = pacing.length(64, 1, 1, lambda rows: 1 + 0.05 * (rows - 1))
    dear = pacing.length(64, 1, 1, lambda rows: 1 + 0.6 * (rows - 1))
    assert cheap == 16 and 2 <= dear < cheap  # rows that cost compute: shorter drafts
    assert pacing.length(64, 2, 2, lambda rows: 1 + 0.6 * (rows - 1)) < dear  # a busy batch: drafts pay less
    assert pacing.length(64, 8, 8, lambda rows: 1 + 0.6 * (rows - 1)) == 0  # they slow 8 slots to speed one
    assert pacing.length(64, 8, 8, lambda rows: 1 + 0.001 * (rows - 1)) == 16  # unless rows are nearly free
    assert pacing.length(64, 2, 2, lambda rows: 1 + 0.02 * (rows - 1)) == 5  # and slow the others <= 10%
    assert pacing.length(3, 1, 1, lambda rows: 1.0) == 3  # never past the slot's limit
    assert pacing.length(64, 1, 1, lambda rows: float(rows)) == 0  # every row a whole step: never pays
    pacing.acceptance = 0.85
    tiled = {2: 1.1, 3: 3.0, 4: 3.0}  # 2 rows best, but a draft of 1 is below draft_min
    assert pacing.length(3, 1, 1, lambda rows: tiled.get(rows, 1.0)) == 3  # the best allowed length
    pacing.acceptance = 0.95
    for _ in range(3):
        pacing.verified(8, 0)  # refused at once, three times
    dear_cost = lambda rows: 1 + 0.6 * (rows - 1)  # noqa: E731
    assert pacing.acceptance < 0.35 and pacing.length(64, 1, 1, dear_cost) == 0
    steps = 1
    while pacing.length(64, 1, 1, dear_cost) == 0:  # its estimate drifts back: it tries again later
        steps += 1
    assert 10 < steps < 200


def test_a_shadow_draft_is_scored_by_the_tokens_written_next():
    pacing = Pacing(Speculation())
    for _ in range(3):
        pacing.verified(8, 0)  # refused three times: the slot stops drafting
    low = pacing.acceptance
    pacing.watch([5, 6, 7])
    for token in (5, 6, 7):  # then it writes what its guess said, for free
        pacing.wrote(token)
    assert pacing.acceptance > low and not pacing.shadow
    high = pacing.acceptance
    pacing.watch([1, 2, 3])
    pacing.wrote(1)
    pacing.wrote(9)  # one kept, then refused: scored as a verification of [1, 2, 3] would be
    assert pacing.acceptance < high and not pacing.shadow
    pacing.watch([4])
    assert pacing.length(64, 1, 1, lambda rows: 1 + 0.05 * (rows - 1)) > 0 and not pacing.shadow  # drafting again


def test_a_draft_that_declines_backs_the_slot_off_as_a_refusal_does():
    declining, refused = Pacing(Speculation()), Pacing(Speculation())
    for _ in range(3):
        declining.declined()  # asked for tokens, sure of none
        refused.verified(8, 0)
    assert declining.acceptance == pytest.approx(refused.acceptance) and declining.acceptance < 0.35
    assert declining.length(64, 1, 1, lambda rows: 1 + 0.6 * (rows - 1)) == 0


def test_bad_draft_bounds_are_one_line():
    with pytest.raises(UsageError, match="--draft-min"):
        Speculation(draft_max=2, draft_min=4)


class Recorder:
    """Records the tokens each sequence generates (a draft source that never drafts)."""

    def __init__(self, book: dict, prompt: list[int]) -> None:
        self.tokens = book.setdefault(tuple(prompt), [])
        self.tokens.clear()

    def add(self, token: int) -> None:
        self.tokens.append(token)

    def propose(self, limit: int) -> list[int]:
        return []


class Replay:
    """Drafts the target's own known continuation with every fifth draft token wrong (what a good
    draft model proposes): verification must keep exactly the target's tokens."""

    def __init__(self, book: dict, prompt: list[int]) -> None:
        self.future = book.get(tuple(prompt), [])
        self.done = 0
        self.proposed = 0

    def add(self, token: int) -> None:
        self.done += 1

    def propose(self, limit: int) -> list[int]:
        guess = list(self.future[self.done : self.done + limit])
        for i in range(len(guess)):
            self.proposed += 1
            if self.proposed % 5 == 0:
                guess[i] = guess[i] + 1
        return guess


def generate(model: Model, prompts: list[str], params: SamplingParams, chat: bool = False) -> list:
    """Run every prompt at once (several slots verify in the same decode)."""
    results: list = [None] * len(prompts)

    def one(i: int) -> None:
        stream = (
            model.chat([{"role": "user", "content": prompts[i]}], params=params)
            if chat
            else model.complete(prompts[i], params=params)
        )
        results[i] = stream.result()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.fixture(scope="module")
def plain(tiny_model):
    """Without speculation; records every sequence's generated token ids in plain.book."""
    with Model.load(tiny_model, n_ctx=512, n_parallel=4, n_threads=1) as model:
        model.book = {}
        model.scheduler.draft_source = lambda prompt: Recorder(model.book, prompt)
        yield model


@pytest.fixture(scope="module")
def speculating(tiny_model):
    with Model.load(tiny_model, n_ctx=512, n_parallel=4, n_threads=1, speculation=Speculation()) as model:
        # The tiny model's output head is most of it, so a row costs far more than the step's fixed
        # part and the measured cost would stop every draft: these tests want drafts, so rows stay cheap.
        model.scheduler.step_cost.relative = lambda rows: 1 + 0.05 * (rows - 1)
        model.scheduler.step_cost.observe = lambda rows, seconds: None
        yield model


@pytest.fixture
def replay(plain, speculating):
    """The speculating model drafting the plain model's recorded continuations."""
    speculating.scheduler.draft_source = lambda prompt: Replay(plain.book, prompt)
    yield speculating
    speculating.scheduler.draft_source = NgramIndex


def same_output(got: list, expected: list) -> None:
    assert [r.reasoning for r in got] == [r.reasoning for r in expected]
    assert [r.content for r in got] == [r.content for r in expected]
    assert [r.done.finish_reason for r in got] == [r.done.finish_reason for r in expected]

    def counts(r) -> tuple[int, int, int]:  # cached tokens depend on what the slots held before
        return r.done.usage.prompt_tokens, r.done.usage.completion_tokens, r.done.usage.reasoning_tokens

    assert [counts(r) for r in got] == [counts(r) for r in expected]


def test_greedy_output_is_the_same_with_ngram_lookup(plain, speculating):
    expected = generate(plain, PROMPTS, greedy(300))
    got = generate(speculating, PROMPTS, greedy(300))
    same_output(got, expected)
    assert sum(r.done.timings.draft_n for r in got) > 0  # n-grams that came back gave drafts to verify


def test_verified_drafts_keep_greedy_output_token_for_token(plain, replay):
    params = greedy(logprobs=2)
    expected = generate(plain, PROMPTS, params)
    before = replay.stats()
    got = generate(replay, PROMPTS, params)
    after = replay.stats()
    same_output(got, expected)
    assert [[lp.token for lp in r.logprobs] for r in got] == [[lp.token for lp in r.logprobs] for r in expected]
    differences = [
        abs(a.logprob - b.logprob)
        for r, e in zip(got, expected, strict=True)
        for a, b in zip(r.logprobs, e.logprobs, strict=True)
    ]
    assert len(differences) == 4 * N and max(differences) < 0.01  # batch shapes move float sums a little
    drafted = sum(r.done.timings.draft_n for r in got)
    accepted = sum(r.done.timings.draft_n_accepted for r in got)
    assert drafted > N and 0.3 * drafted < accepted < drafted  # every fifth draft token is wrong
    assert after["draft_tokens_total"] - before["draft_tokens_total"] == drafted
    assert after["draft_accepted_total"] - before["draft_accepted_total"] == accepted


def test_stop_strings_and_the_think_budget_end_where_they_would(plain, replay):
    reference = generate(plain, PROMPTS, greedy())
    stops = [r.content[10:14] for r in reference]
    for prompt, stop in zip(PROMPTS, stops, strict=True):
        params = greedy(stop=[stop])
        expected, got = generate(plain, [prompt], params), generate(replay, [prompt], params)
        same_output(got, expected)
        assert got[0].done.finish_reason == "stop" and stop not in got[0].content
    params = greedy(64, think_budget=9)
    expected = generate(plain, PROMPTS[:2], params, chat=True)
    got = generate(replay, PROMPTS[:2], params, chat=True)
    same_output(got, expected)
    assert all(r.done.usage.reasoning_tokens <= 9 + 16 for r in got)
    assert sum(r.done.timings.draft_n_accepted for r in got) > 0


def test_a_grammar_holds_with_drafts_outside_it(plain, replay):
    grammar = 'root ::= "{\\"n\\": " [0-9]+ "}"'
    params = greedy(24, grammar=grammar)
    expected = generate(plain, PROMPTS, params)
    got = generate(replay, PROMPTS, params)
    same_output(got, expected)
    assert all(r.content.startswith('{"n": ') for r in got)


def test_sampling_keeps_the_target_distribution_draw_for_draw(plain, replay):
    """llama.cpp's rule samples the target at every verified position, one random draw per kept
    token as without drafts: a seeded request gives the very same text."""
    params = SamplingParams(temperature=0.9, top_p=0.95, seed=7, max_tokens=N)
    expected = generate(plain, PROMPTS, params)
    got = generate(replay, PROMPTS, params)
    same_output(got, expected)
    assert sum(r.done.timings.draft_n_accepted for r in got) > N


def test_run_json_and_the_served_metrics_count_drafts(tiny_model, tmp_path_factory):
    import json

    import httpx
    from serving import openai_client, serving
    from typer.testing import CliRunner

    from r1local.cli import app

    fast = ["--max-tokens", "300", "--ctx", "512", "--temperature", "0", "--threads", "1", "--json", "--no-think"]
    result = CliRunner().invoke(app, ["run", str(tiny_model), "zzz", "--spec", "ngram", "--draft-max", "8", *fast])
    assert result.exit_code in (0, 20), result.output
    timings = json.loads(result.stdout)["timings"]
    assert 0 <= timings["draft_n_accepted"] <= timings["draft_n"] and timings["draft_n"] > 0
    bad = CliRunner().invoke(
        app, ["run", str(tiny_model), "hi", "--spec", "ngram", "--draft-min", "9", "--draft-max", "4", *fast]
    )
    assert bad.exit_code == 2 and "--draft-min" in bad.output and "Traceback" not in bad.output
    with serving(tmp_path_factory, tiny_model, speculation=Speculation()) as url:
        client = openai_client(url)
        client.completions.create(model=tiny_model.stem, prompt="zzz", max_tokens=300, temperature=0)
        text = httpx.get(f"{url}/metrics").text
    counts = {
        line.split("{")[0]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(
            ("r1local_draft_tokens_total", "r1local_draft_accepted_tokens_total", "r1local_draft_acceptance_ratio")
        )
    }
    assert counts["r1local_draft_tokens_total"] > 0
    assert counts["r1local_draft_tokens_total"] >= counts["r1local_draft_accepted_tokens_total"]
    assert counts["r1local_draft_acceptance_ratio"] == pytest.approx(
        counts["r1local_draft_accepted_tokens_total"] / counts["r1local_draft_tokens_total"]
    )
