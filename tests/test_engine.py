"""The engine on a real tiny GGUF: greedy parity with llama-cpp-python, continuous batching,
cancellation, stop strings, limits and the R1 reasoning split."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from llama_cpp import Llama

from r1local.engine.events import ContentDelta, Done, ReasoningDelta
from r1local.engine.model import Model
from r1local.engine.params import SamplingParams
from r1local.errors import ContextOverflow, Overloaded

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a land far away,",
    "1, 2, 3, 4,",
]
N = 24


def greedy(max_tokens: int = N, **kw) -> SamplingParams:
    return SamplingParams(temperature=0, max_tokens=max_tokens, **kw)


@pytest.fixture(scope="module")
def engine(tiny_model):
    with Model.load(tiny_model, n_ctx=512, n_parallel=4, n_threads=1) as model:
        yield model


@pytest.fixture(scope="module")
def reference(tiny_model):
    """llama-cpp-python's own high-level greedy output for each prompt."""
    llm = Llama(model_path=str(tiny_model), n_ctx=512, n_threads=1, verbose=False)
    texts = {}
    for prompt in PROMPTS:
        tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        out = []
        for token in llm.generate(tokens, temp=0.0, repeat_penalty=1.0, top_k=0, top_p=1.0, min_p=0.0):
            if llm.token_eos() == token or len(out) == N:
                break
            out.append(token)
        texts[prompt] = llm.detokenize(out, special=True).decode("utf-8", "replace")
    llm.close()
    return texts


def test_greedy_matches_llama_cpp_python(engine, reference):
    for prompt in PROMPTS:
        result = engine.complete(prompt, params=greedy()).result()
        assert result.content == reference[prompt], prompt
        assert result.done.usage.completion_tokens > 0


def _mappings_of(path) -> int:
    target = str(path.resolve())
    with open("/proc/self/maps") as maps:
        return sum(line.rstrip().endswith(target) for line in maps)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_reading_the_file_into_ram_maps_nothing_and_generates_the_same(tiny_model, reference):
    before = _mappings_of(tiny_model)
    with Model.load(tiny_model, n_ctx=512, n_parallel=1, n_threads=1, map_file=False) as read:
        assert _mappings_of(tiny_model) == before
        assert read.complete(PROMPTS[0], params=greedy()).result().content == reference[PROMPTS[0]]
    with Model.load(tiny_model, n_ctx=512, n_parallel=1, n_threads=1, map_file=True):
        assert _mappings_of(tiny_model) > before


def test_turning_the_tiled_matmul_off_tells_llama_cpp_unless_the_user_chose(tiny_model):
    load = (
        "import os, sys; from pathlib import Path; from r1local.engine.native import NativeModel; "
        "NativeModel(Path(sys.argv[1]), n_ctx_seq=64, n_seq=8, n_gpu_layers=0, n_threads=1, n_batch=512, "
        "tiled_matmul=False); print(os.environ.get('GGML_CPU_TILED_MM'))"
    )
    for user, seen in ((None, "0"), ("1", "1")):
        env = {k: v for k, v in os.environ.items() if k != "GGML_CPU_TILED_MM"}
        env.update({"GGML_CPU_TILED_MM": user} if user else {})
        out = subprocess.run([sys.executable, "-c", load, str(tiny_model)], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[-1] == seen


def test_batched_equals_solo_with_staggered_starts(engine):
    solo = {p: engine.complete(p, params=greedy()).result().content for p in PROMPTS}
    results: dict[str, str] = {}

    def worker(prompt: str, delay: float) -> None:
        time.sleep(delay)
        results[prompt] = engine.complete(prompt, params=greedy()).result().content

    threads = [threading.Thread(target=worker, args=(p, i * 0.02)) for i, p in enumerate(PROMPTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == solo


def test_streams_really_overlap(engine):
    """Four requests decode in the same steps: each starts before any other finishes."""
    streams = [engine.complete(p, params=greedy(32, ignore_eos=True)) for p in PROMPTS]
    spans = [None] * len(streams)

    def read(i):
        stamps = [time.perf_counter() for _ in streams[i]]
        spans[i] = (stamps[0], stamps[-1])

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(streams))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert max(start for start, _ in spans) < min(end for _, end in spans)


def test_max_tokens_and_usage(engine):
    result = engine.complete(PROMPTS[0], params=greedy(5, ignore_eos=True)).result()
    assert result.done.finish_reason == "length"
    assert result.done.usage.completion_tokens == 5
    assert result.done.usage.prompt_tokens == len(engine.tokenize(PROMPTS[0])) + 1  # + BOS
    assert result.done.timings.ttft_s > 0
    assert result.done.timings.generation_tokens_per_s > 0


def test_stop_string_ends_and_is_not_emitted(engine):
    full = engine.complete(PROMPTS[1], params=greedy(32, ignore_eos=True)).result().content
    assert len(full) > 6
    stop = full[3:6]
    result = engine.complete(PROMPTS[1], params=greedy(32, ignore_eos=True, stop=[stop])).result()
    assert result.done.finish_reason == "stop"
    assert result.content == full[: full.index(stop)]


def test_cancel_frees_the_slot_and_spares_the_others(engine):
    keep = engine.complete(PROMPTS[2], params=greedy(40, ignore_eos=True))
    victim = engine.complete(PROMPTS[3], params=greedy(10_000, ignore_eos=True))
    next(iter(victim))
    victim.cancel()
    assert victim.result().done.finish_reason == "cancelled"
    solo = engine.complete(PROMPTS[2], params=greedy(40, ignore_eos=True)).result().content
    assert keep.result().content == solo
    deadline = time.time() + 5
    while engine.stats()["busy_slots"] and time.time() < deadline:
        time.sleep(0.01)
    assert engine.stats()["busy_slots"] == 0


def test_context_overflow_is_refused_at_once(engine):
    with pytest.raises(ContextOverflow):
        engine.complete("hello " * 600, params=greedy())


def test_max_tokens_clamped_to_context(engine):
    result = engine.complete("hi", params=greedy(10**9, ignore_eos=True)).result()
    assert result.done.finish_reason == "length"
    assert result.done.usage.prompt_tokens + result.done.usage.completion_tokens == engine.n_ctx


def test_queue_full_is_overloaded(tiny_model):
    with Model.load(tiny_model, n_ctx=256, n_parallel=1, n_threads=1, max_queue=1) as model:
        running = model.complete("a", params=greedy(200, ignore_eos=True))
        queued = model.complete("b", params=greedy(200, ignore_eos=True))
        with pytest.raises(Overloaded):
            model.complete("c", params=greedy())
        running.cancel()
        queued.cancel()
        assert running.result().done.finish_reason == "cancelled"
        assert queued.result().done.finish_reason == "cancelled"


def test_chat_splits_reasoning_from_answer(engine):
    """The R1 template opens <think>: generated text is reasoning until </think> appears."""
    stream = engine.chat([{"role": "user", "content": "hi"}], params=greedy(16, ignore_eos=True))
    events = list(stream)
    assert isinstance(events[-1], Done)
    kinds = {type(e) for e in events[:-1]}
    # random weights never close the think block within 16 tokens: all of it is reasoning
    assert kinds == {ReasoningDelta}


def test_think_off_puts_everything_in_the_answer(engine):
    stream = engine.chat([{"role": "user", "content": "hi"}], think=False, params=greedy(16, ignore_eos=True))
    events = list(stream)
    assert {type(e) for e in events[:-1]} == {ContentDelta}


def test_async_iteration(engine):
    import asyncio

    async def collect():
        stream = engine.complete(PROMPTS[0], params=greedy(8, ignore_eos=True))
        return [event async for event in stream]

    events = asyncio.run(collect())
    assert isinstance(events[-1], Done) and events[-1].usage.completion_tokens == 8
    sync = engine.complete(PROMPTS[0], params=greedy(8, ignore_eos=True)).result()
    assert "".join(e.text for e in events[:-1]) == sync.content


def test_prefix_reuse_keeps_greedy_output(engine):
    """A prompt that extends a finished one reuses its cells, with identical output."""
    base = PROMPTS[2] + " there lived"
    engine.complete(PROMPTS[2], params=greedy(4)).result()
    reused = engine.complete(base, params=greedy()).result()
    assert reused.done.usage.cached_tokens > 0
    with Model.load(engine.path, n_ctx=512, n_parallel=1, n_threads=1) as cold:
        fresh = cold.complete(base, params=greedy()).result()
    assert fresh.done.usage.cached_tokens == 0
    assert reused.content == fresh.content


def test_second_chat_turn_reuses_the_history(engine):
    """Turn 2 of a chat evaluates only what turn 1 did not: the last answer and the new question."""
    history = [{"role": "user", "content": "Summarise this: " + "lorem ipsum dolor sit amet " * 40}]
    first = engine.chat(history, params=greedy(8, ignore_eos=True)).result()
    history += [
        {"role": "assistant", "content": "It repeats one phrase."},
        {"role": "user", "content": "How often?"},
    ]
    second = engine.chat(history, params=greedy(8, ignore_eos=True)).result()
    new_tokens = second.done.usage.prompt_tokens - second.done.usage.cached_tokens
    assert second.done.usage.cached_tokens >= first.done.usage.prompt_tokens - 2  # all but <think>\n
    assert new_tokens < 30
    with Model.load(engine.path, n_ctx=512, n_parallel=1, n_threads=1) as cold:
        assert cold.chat(history, params=greedy(8, ignore_eos=True)).result().reasoning == second.reasoning


def test_seeded_sampling_is_reproducible_and_seeds_differ(engine):
    def sample(seed: int) -> str:
        params = SamplingParams(
            temperature=1.0,
            top_p=0.95,
            top_k=50,
            min_p=0.01,
            seed=seed,
            max_tokens=16,
            ignore_eos=True,
            repeat_penalty=1.1,
            presence_penalty=0.5,
            frequency_penalty=0.5,
        )
        return engine.complete(PROMPTS[0], params=params).result().content

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_evicted_history_comes_back_from_the_ram_cache(tiny_model):
    """One slot, two alternating chats: each returning chat restores its saved cells."""
    long_a = "alpha beta gamma delta " * 80
    long_b = "one two three four five " * 80
    with Model.load(tiny_model, n_ctx=1024, n_parallel=1, n_threads=1) as model:
        model.complete(long_a, params=greedy(4)).result()
        model.complete(long_b, params=greedy(4)).result()  # takes the slot; A's cells are saved
        back = model.complete(long_a + "epsilon", params=greedy()).result()
        assert back.done.usage.cached_tokens >= 300
        assert model.stats()["prefix_cache_hits"] == 1
    with Model.load(tiny_model, n_ctx=1024, n_parallel=1, n_threads=1) as cold:
        assert cold.complete(long_a + "epsilon", params=greedy()).result().content == back.content


def test_bad_grammar_is_refused_at_submit_and_the_model_keeps_serving(engine):
    from r1local.errors import UsageError

    with pytest.raises(UsageError):
        engine.complete("hi", params=greedy(grammar="root ::= ( unclosed"))
    assert engine.complete(PROMPTS[0], params=greedy(4, ignore_eos=True)).result().done.usage.completion_tokens == 4


def test_grammar_constrains_the_output(engine):
    result = engine.complete("Answer:", params=greedy(8, grammar='root ::= "yes" | "no"')).result()
    assert result.content in ("yes", "no")
    assert result.done.finish_reason == "stop"


def test_generations_queued_while_admission_is_held_start_in_one_step(tiny_model):
    """A request's n choices start together: llama.cpp's quantised CPU kernels are not
    batch-invariant, so greedy choices that start steps apart can part (llama-server's own
    test_completion_with_tokens_input sends two identical prompts and compares the answers)."""
    with Model.load(tiny_model, n_ctx=512, n_parallel=3, n_threads=1) as model:
        running = model.complete("Go on", params=greedy(200, ignore_eos=True))  # the scheduler keeps stepping
        while not running.progress.generated:
            time.sleep(0.01)
        with model.admission_held():
            first = model.complete(PROMPTS[0], params=greedy(8))
            time.sleep(0.3)  # steps go on meanwhile: without the hold, `first` would start in one of them
            assert not first.progress.first_token
            second = model.complete(PROMPTS[0], params=greedy(8))
        assert first.result().content == second.result().content
        assert first.progress.first_token == second.progress.first_token  # the time of one step
        running.cancel()


def test_an_equal_prompt_admitted_beside_a_cached_one_starts_from_the_same_cells(tiny_model):
    """llama-server's test_completion_with_tokens_input: a prompt answered alone, then twice in one
    request. One of the two finds its cells in a slot; the other copies them instead of computing
    them in another batch shape, so both evaluate the same last token in the same step."""
    with Model.load(tiny_model, n_ctx=512, n_parallel=2, n_threads=1) as model:
        alone = model.complete(PROMPTS[0], params=greedy(8)).result().content
        with model.admission_held():
            first = model.complete(PROMPTS[0], params=greedy(8))
            second = model.complete(PROMPTS[0], params=greedy(8))
        assert first.result().content == second.result().content == alone
        reused = len(model.tokenize(PROMPTS[0], add_special=True)) - 1
        assert first.progress.cached_tokens == second.progress.cached_tokens == reused
