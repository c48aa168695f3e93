"""No request can hold the shared step: a grammar's alternatives are bounded before it is built,
its picks run off the step, a pick that takes too long ends its request in one line, and a
cancelled grammar request leaves at once. The latency of an unrelated client is measured while the
worst grammar the bounds allow runs."""

from __future__ import annotations

import json
import statistics
import threading
import time
from dataclasses import replace

import httpx
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server

from r1local.engine import scheduler
from r1local.engine.bindings import submodule
from r1local.engine.gbnf import MAX_FANOUT, check_cost, fanout
from r1local.errors import UsageError


def alternatives(n: int) -> str:
    """The grammar of issue 24: `n` identical alternatives, repeated (n=100: 609 bytes)."""
    return "root ::= (" + " | ".join(['"a"'] * n) + ")+"


WORST_ALLOWED = alternatives(MAX_FANOUT)


def test_the_fanout_counts_alternatives_through_references_groups_and_optional_items():
    assert fanout(alternatives(100)) == 100 and len(alternatives(100)) == 609
    assert fanout('x ::= "a" | "b" | "c"\nroot ::= (x | x | "d")*') == 7
    assert fanout('root ::= "a"? "b"? "c" | "d"') == 4  # optional items open what follows them too
    assert fanout('root ::= [a-z]+ "x" (item | "y") # a comment | "z" | "w"\nitem ::= "i" | "j"') == 3


def test_the_grammars_the_server_writes_itself_are_within_the_bound():
    grammars = submodule("llama_grammar")
    enum = {
        "type": "object",
        "properties": {
            "color": {"enum": [f"shade {i}" for i in range(64)]},
            "size": {"type": "number"},
            "tags": {"type": "array"},
        },
    }
    for grammar in (grammars.JSON_GBNF, grammars.json_schema_to_gbnf(json.dumps(enum)), WORST_ALLOWED):
        check_cost(grammar)


@pytest.mark.parametrize(
    "grammar",
    [
        alternatives(100),
        alternatives(10_000),
        "x ::= " + " | ".join(['"a"'] * 10) + "\nroot ::= (x | x | x | x | x | x | x)+",
        "root ::= " + "(" * 100 + '"a"' + ")" * 100,
    ],
)
def test_a_grammar_past_the_bound_is_refused_in_one_line(grammar):
    with pytest.raises(UsageError, match="The grammar is refused") as refusal:
        check_cost(grammar)
    assert "\n" not in str(refusal.value)


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    settings = replace(TEST_SETTINGS, models=(str(tiny_model),), parallel=4)
    with isolated_store(tmp_path_factory.mktemp("store")), running_server(settings) as base:
        yield base


def _twenty_tokens(url: str) -> float:
    start = time.perf_counter()
    response = httpx.post(
        f"{url}/completion",
        json={"prompt": "Hello", "n_predict": 20, "ignore_eos": True, "temperature": 0},
        timeout=120,
    )
    assert response.status_code == 200 and response.json()["tokens_predicted"] == 20, response.text
    return time.perf_counter() - start


def test_the_issues_grammar_is_refused_at_once(url):
    for grammar in (alternatives(100), alternatives(10_000)):  # 609 bytes; 60 KB
        start = time.perf_counter()
        response = httpx.post(
            f"{url}/completion", json={"prompt": "Hi", "grammar": grammar, "n_predict": 20}, timeout=30
        )
        assert response.status_code == 400 and response.json()["error"]["param"] == "grammar", response.text
        assert "opens" in response.json()["error"]["message"] and time.perf_counter() - start < 5


NARROW = 'root ::= ("ab" | "ba")+ "c" root'  # never complete; few tokens fit, so most picks check every token


@pytest.mark.parametrize("grammar", [NARROW, WORST_ALLOWED], ids=["narrow", "worst allowed"])
def test_an_unrelated_request_keeps_its_speed_beside_a_grammar(url, grammar):
    """While a grammar request generates (the whole vocabulary checked at most tokens, ~0.1 s each;
    or the worst allowed, seconds per token until its pick limit ends it), another client asks for
    20 tokens three times."""
    _twenty_tokens(url)  # warm
    alone = statistics.median(_twenty_tokens(url) for _ in range(3))
    lines: list[str] = []
    done = threading.Event()

    def grammar_request() -> None:
        with httpx.stream(
            "POST",
            f"{url}/completion",
            timeout=120,
            json={"prompt": "Hi", "grammar": grammar, "n_predict": 400, "stream": True, "temperature": 1},
        ) as response:
            for line in response.iter_lines():
                lines.append(line)
                if done.is_set():
                    return

    runner = threading.Thread(target=grammar_request)
    runner.start()
    time.sleep(0.5)  # admitted, its first picks in flight
    beside = [_twenty_tokens(url) for _ in range(3)]
    running = runner.is_alive()
    done.set()
    runner.join(120)
    print(f"\n20 tokens alone {alone:.3f} s; beside the grammar {statistics.median(beside):.3f} s")
    assert statistics.median(beside) < 3 * alone + 0.1  # 3x, and a little for a busy machine
    if grammar == NARROW:
        assert running, "the grammar request ended before the measurement"
    else:  # seconds per pick: ended by the limit, in one line
        assert "took more than 2 s to check one token" in "".join(lines)


def test_a_grammar_request_is_cancelled_without_waiting_for_its_pick(url, monkeypatch):
    monkeypatch.setattr(scheduler, "GRAMMAR_PICK_LIMIT_S", 4.0)  # the slot must free long before the limit
    with httpx.stream(
        "POST",
        f"{url}/completion",
        timeout=30,
        json={"prompt": "Hi", "grammar": WORST_ALLOWED, "n_predict": 400, "stream": True},
    ) as response:
        assert response.status_code == 200
        deadline = time.monotonic() + 10
        while not any(slot["is_processing"] for slot in httpx.get(f"{url}/slots").json()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    left = time.perf_counter()
    while any(slot["is_processing"] for slot in httpx.get(f"{url}/slots").json()):
        assert time.perf_counter() - left < 1.5, "the slot waited for the grammar's pick"
        time.sleep(0.02)
    _twenty_tokens(url)  # the model answers others at once


def test_a_whole_vocabulary_check_stops_at_its_deadline(tiny_model):
    """A grammar ambiguous inside a recursion doubles its parser stacks with every "a" (measured:
    a whole-vocabulary check 0.1 s after 2 of them, 7.5 s after 8); the fan-out count cannot see
    it, so the check runs a chunk of the vocabulary at a time and stops past the pick's deadline."""
    import ctypes

    from r1local.engine.model import Model
    from r1local.engine.params import SamplingParams
    from r1local.engine.sampling import PickTooSlow, Sampler

    model = Model.load(tiny_model, n_ctx=256, n_threads=1)
    native = model.native
    sampler = Sampler(
        SamplingParams(grammar='root ::= s\ns ::= "a" s "b" | "a" s "c" | "d"', temperature=0),
        native.vocab,
        native.n_vocab,
    )
    try:
        for _ in range(10):  # 1,024 stacks: tens of seconds for one whole check
            sampler._accept_now(native.tokenize("a", add_special=False)[0])
        logits = (ctypes.c_float * native.n_vocab)()
        start = time.perf_counter()
        with pytest.raises(PickTooSlow):
            sampler._pick(logits, grammar_deadline=start + 0.5)
        assert time.perf_counter() - start < 3, "the check did not stop near its deadline"
    finally:
        sampler.close()
        model.close()
