"""The OpenVINO GenAI engine for real, on OpenVINO's CPU device with the tiny R1 GGUF: the same
prompt tokens and greedy text as llama.cpp, streaming, the reasoning split, think off, stop
strings, cancellation, continuous batching, queue limits, the compiled-model cache, and the NPU's
one-at-a-time path with its prompt limit. Skipped when the openvino extra is not installed."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("openvino_genai")

from r1local.engine.events import ContentDelta, Done, ReasoningDelta  # noqa: E402
from r1local.engine.model import Model  # noqa: E402
from r1local.engine.openvino import OpenVINOModel, available_devices, open_pipeline  # noqa: E402
from r1local.engine.openvino_plan import OpenVINOPlan  # noqa: E402
from r1local.engine.params import SamplingParams  # noqa: E402
from r1local.engine.vocab import LlamaVocab  # noqa: E402
from r1local.errors import ContextOverflow, Overloaded, UsageError  # noqa: E402
from r1local.request.prepare import check_generation  # noqa: E402

PROMPTS = ["The capital of France is", "def fibonacci(n):"]


def greedy(max_tokens: int = 16, **kw) -> SamplingParams:
    return SamplingParams(temperature=0, max_tokens=max_tokens, **kw)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("openvino-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("R1LOCAL_OPENVINO_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def compiles(cache_dir):
    return []


@pytest.fixture(scope="module")
def engine(tiny_model, cache_dir, compiles):
    with OpenVINOModel.load(
        tiny_model, device="CPU", n_ctx=256, n_parallel=2, max_queue=1, n_threads=1, on_compile=compiles.append
    ) as model:
        yield model


@pytest.fixture(scope="module")
def llama(tiny_model):
    with Model.load(tiny_model, n_ctx=256, n_parallel=1, n_threads=1) as model:
        yield model


def test_cpu_is_an_openvino_device_and_the_engine_says_where_it_runs(engine):
    assert "CPU" in available_devices()
    assert engine.describe() | {"engine": "openvino", "device": "CPU", "context_length": 256} == engine.describe()


def test_prompt_tokens_and_greedy_text_match_llama_cpp(engine, llama):
    for prompt in PROMPTS:
        assert engine.prompt_tokens(prompt) == llama.prompt_tokens(prompt)
        ours = engine.complete(prompt, params=greedy()).result()
        theirs = llama.complete(prompt, params=greedy()).result()
        assert ours.content == theirs.content, prompt
        assert ours.done.usage.prompt_tokens == theirs.done.usage.prompt_tokens
        assert ours.done.usage.completion_tokens == theirs.done.usage.completion_tokens


def test_chat_streams_reasoning_apart_from_the_answer(engine):
    events = list(engine.chat(ask("Why is the sky blue?"), params=greedy(12, ignore_eos=True)))
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "length"
    assert done.usage.completion_tokens == 12
    assert done.timings.ttft_s > 0 and done.timings.generation_tokens_per_s > 0
    # the R1 prompt opens <think>: random weights never close it, so everything is reasoning
    assert {type(e) for e in events[:-1]} == {ReasoningDelta}
    assert len(events) > 2  # streamed in pieces, not at the end


def test_think_off_puts_everything_in_the_answer(engine, llama):
    ours = engine.chat(ask("hi"), think=False, params=greedy(12, ignore_eos=True)).result()
    assert ours.reasoning == "" and ours.content
    assert ours.content == llama.chat(ask("hi"), think=False, params=greedy(12, ignore_eos=True)).result().content


def test_stop_string_ends_the_answer_and_is_not_emitted(engine):
    full = engine.complete(PROMPTS[0], params=greedy(16, ignore_eos=True)).result().content
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    cut = engine.complete(PROMPTS[0], params=greedy(16, ignore_eos=True, stop=[stop])).result()
    assert cut.done.finish_reason == "stop"
    assert cut.content == full[: full.index(stop)]


def test_cancel_ends_the_request_and_the_model_keeps_serving(engine):
    stream = engine.complete(PROMPTS[0], params=greedy(200, ignore_eos=True))
    for event in stream:
        stream.cancel()
        if isinstance(event, Done):
            break
    assert event.finish_reason == "cancelled" and event.usage.completion_tokens < 200
    assert engine.complete(PROMPTS[1], params=greedy(4)).result().done.finish_reason in ("length", "stop")
    assert engine.stats()["busy_slots"] == 0


def test_two_requests_share_the_continuous_batch(engine):
    solo = [engine.complete(p, params=greedy(24, ignore_eos=True)).result().content for p in PROMPTS]
    streams = [engine.complete(p, params=greedy(24, ignore_eos=True)) for p in PROMPTS]
    spans, texts = [None, None], [None, None]

    def read(i):
        stamps, text = [], ""
        for event in streams[i]:
            stamps.append(time.perf_counter())
            text += event.text if isinstance(event, (ContentDelta, ReasoningDelta)) else ""
        spans[i], texts[i] = (stamps[0], stamps[-1]), text

    threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert texts == solo
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]  # both were in flight together


def test_queue_limit_is_overloaded_and_frees_again(engine):
    streams = [engine.complete(PROMPTS[0], params=greedy(500, ignore_eos=True)) for _ in range(3)]  # 2 slots + 1
    with pytest.raises(Overloaded):
        engine.complete(PROMPTS[0], params=greedy(4))
    for stream in streams:
        stream.cancel()
    assert all(s.result().done.finish_reason == "cancelled" for s in streams)
    assert engine.stats()["rejected_total"] >= 1


def test_limits_and_unsupported_options_are_clear_errors(engine):
    with pytest.raises(ContextOverflow):
        engine.complete("word " * 400, params=greedy(4))
    with pytest.raises(UsageError, match="does not support grammar"):  # declared, refused before any work
        check_generation(SamplingParams(grammar='root ::= "a"'), engine)
    clamped = engine.complete(PROMPTS[0], params=greedy(10_000, ignore_eos=True)).result()
    assert clamped.done.usage.total_tokens == engine.n_ctx


def test_seeded_sampling_is_reproducible(engine):
    params = SamplingParams(seed=7, max_tokens=12, ignore_eos=True)
    first = engine.complete(PROMPTS[0], params=params).result().content
    assert engine.complete(PROMPTS[0], params=params).result().content == first


def test_first_load_converts_and_compiles_into_the_cache_and_the_second_reads_it(engine, tiny_model, compiles):
    assert len(compiles) == 1 and compiles[0].device == "CPU"  # the first load said it would compile
    assert not engine.plan.first_compile  # the compiled blob is in the model's cache folder now
    converted = engine.plan.cache_dir / "converted"
    assert (converted / "openvino_model.xml").is_file() and not (converted / tiny_model.name).exists()
    expected = engine.complete(PROMPTS[0], params=greedy()).result().content
    with OpenVINOModel.load(tiny_model, device="CPU", n_ctx=256, n_threads=1, on_compile=compiles.append) as again:
        assert again.complete(PROMPTS[0], params=greedy()).result().content == expected
    assert len(compiles) == 1  # nothing to compile the second time


def test_npu_style_pipeline_runs_one_at_a_time_within_its_prompt_limit(tiny_model, engine):
    """The NPU's path (static shapes, one request at a time, a streamer that stops and cancels)
    driven on the CPU device: only the device differs on an Intel NPU."""
    import openvino_genai

    plan = OpenVINOPlan(
        "CPU",
        n_ctx=160,
        n_parallel=1,
        continuous_batching=False,
        cache_dir=engine.plan.cache_dir,
        max_prompt_len=96,
        min_response_len=64,
    )
    pipeline = open_pipeline(openvino_genai, tiny_model, plan)  # reads the folder the engine converted
    with OpenVINOModel("tiny", tiny_model, plan, pipeline, LlamaVocab(tiny_model), max_queue=1) as npu:
        result = npu.chat(ask("Why is the sky blue?"), params=greedy(10, ignore_eos=True)).result()
        assert result.done.finish_reason == "length" and result.done.usage.completion_tokens == 10
        assert result.reasoning and not result.content

        long_turn = "tell me more " * 30  # about 90 tokens
        history = [*ask(long_turn), {"role": "assistant", "content": "<think>x</think>sure"}, *ask("and then?")]
        trimmed = npu.chat(history, params=greedy(4, ignore_eos=True)).result()
        assert trimmed.done.usage.prompt_tokens < 30  # the oldest exchange went, the last turn stayed
        with pytest.raises(ContextOverflow, match="at most 96"):
            npu.chat(ask(long_turn * 2), params=greedy(4))

        first = npu.complete(PROMPTS[0], params=greedy(200, ignore_eos=True))
        waiting = npu.complete(PROMPTS[1], params=greedy(4))
        with pytest.raises(Overloaded):
            npu.complete(PROMPTS[1], params=greedy(4))
        next(iter(first))
        first.cancel()
        assert first.result().done.finish_reason == "cancelled"
        assert waiting.result().done.finish_reason in ("length", "stop")
