"""A llama.cpp sampler chain built from one request's SamplingParams.

A grammar is not part of the chain. Checking it against the whole vocabulary costs far more than
the model's step (a 64-value enum: about 15 times the step of the tiny model), so, as llama.cpp's
own common sampler does, the chain picks a token first and the grammar only checks that one; only
a token the grammar refuses makes it filter every candidate and the chain pick again.

Even so a grammar's check can take far longer than a step (a whole-vocabulary filter: ~80 ms on a
busy two-core PC; seconds for a grammar of many open alternatives), so a grammar request's pick
runs in a thread of its own, from a copy of the step's logits (start()): the shared step never
waits for it, the scheduler ends a pick that takes too long, and a cancelled request leaves at
once, its sampler freed when the pick in flight returns. gbnf.py bounds what one pick can cost.
"""

from __future__ import annotations

import ctypes
import math
import os
import random
import sys
import threading
import time
from concurrent.futures import Future

from ..errors import UsageError
from .bindings import C
from .gbnf import check_cost
from .params import SamplingParams

_RANDOM = random.SystemRandom()
PICK_NICENESS = 10  # added to a grammar pick thread's niceness
CHECK_CHUNK = 4096  # tokens per grammar call in a whole-vocabulary check: between calls a pick can stop


class Pick(Future):
    """A grammar's pick in flight; `logits` is the copy it picks from (for logprobs). Past
    `deadline` (time.perf_counter()) it stops at its next chance with PickTooSlow."""

    def __init__(self, logits: ctypes.Array, deadline: float) -> None:
        super().__init__()
        self.logits = logits
        self.deadline = deadline


class PickTooSlow(Exception):
    """A grammar's pick passed its deadline."""


class Sampler:
    """Owns a llama_sampler chain; sample() also records the token for penalties and grammar."""

    def __init__(self, params: SamplingParams, vocab, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self.grammar = None
        self._queued: list[int] = []  # tokens accepted while no pick runs, for the next pick to take
        self._pick_in_flight: Pick | None = None
        self.chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
        add = lambda s: C.llama_sampler_chain_add(self.chain, s)  # noqa: E731
        try:
            if params.grammar:
                check_cost(params.grammar)
                self.grammar = _grammar_sampler(vocab, params.grammar, params.grammar_triggers)
                if not self.grammar:
                    raise UsageError("The grammar (response_format) could not be parsed.")
            if params.logit_bias:
                biases = (C.llama_logit_bias * len(params.logit_bias))(*params.logit_bias)
                add(C.llama_sampler_init_logit_bias(n_vocab, len(params.logit_bias), biases))
            if params.repeat_penalty != 1.0 or params.presence_penalty != 0.0 or params.frequency_penalty != 0.0:
                add(
                    C.llama_sampler_init_penalties(
                        n_vocab,
                        params.repeat_last_n,
                        params.repeat_penalty,
                        params.frequency_penalty,
                        params.presence_penalty,
                    )
                )
            if params.temperature <= 0.0:
                add(C.llama_sampler_init_greedy())
            else:
                if params.top_k > 0:
                    add(C.llama_sampler_init_top_k(params.top_k))
                if params.top_p < 1.0:
                    add(C.llama_sampler_init_top_p(params.top_p, 1))
                if params.min_p > 0.0:
                    add(C.llama_sampler_init_min_p(params.min_p, 1))
                add(C.llama_sampler_init_temp(params.temperature))
                seed = params.seed if params.seed is not None else _RANDOM.getrandbits(32)
                add(C.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        except BaseException:
            self.close()
            raise

    @property
    def deferred(self) -> bool:
        """Whether picks run off the step (start()) rather than in it (sample())."""
        return self.grammar is not None

    def sample(self, ctx, batch_index: int) -> int:
        """Pick from row `batch_index` of the step's logits, in the step (no grammar)."""
        return C.llama_sampler_sample(self.chain, ctx, batch_index)  # accepts the token too

    def start(self, ctx, batch_index: int, deadline: float) -> Pick:
        """Pick from a copy of row `batch_index` in a thread of its own; the future gives the token."""
        logits = (ctypes.c_float * self.n_vocab)()
        ctypes.memmove(logits, C.llama_get_logits_ith(ctx, batch_index), ctypes.sizeof(logits))
        pick = self._pick_in_flight = Pick(logits, deadline)
        threading.Thread(target=self._grammar_pick, args=(pick,), name="r1local-grammar", daemon=True).start()
        return pick

    def accept(self, token: int) -> None:
        """A token that goes into the sequence, chosen here or not (the reasoning budget's):
        grammar and penalties follow it (a grammar at its next pick, off the step)."""
        if self.grammar is not None:
            self._queued.append(token)
        else:
            C.llama_sampler_accept(self.chain, token)

    def _grammar_pick(self, pick: Pick) -> None:
        _yield_to_others()
        try:
            for token in self._queued:
                self._accept_now(token)
            self._queued.clear()
            token = self._pick(pick.logits)
            if not self._allowed(token):
                token = self._pick(pick.logits, grammar_deadline=pick.deadline)
            self._accept_now(token)
        except Exception as error:  # noqa: BLE001  (a bug must end this request, not the thread silently)
            pick.set_exception(error)
        else:
            pick.set_result(token)

    def _accept_now(self, token: int) -> None:
        C.llama_sampler_accept(self.grammar, token)
        C.llama_sampler_accept(self.chain, token)

    def _pick(self, logits, *, grammar_deadline: float | None = None) -> int:
        """The chain's choice among every token of the vocabulary (with a deadline: the grammar's
        allowed ones, checked a chunk at a time so that a check past its deadline stops)."""
        candidates = _candidates(logits, self.n_vocab)  # held here while llama.cpp reads it
        if grammar_deadline is not None:
            size, base = ctypes.sizeof(C.llama_token_data), ctypes.addressof(candidates)
            for start in range(0, self.n_vocab, CHECK_CHUNK):
                if time.perf_counter() > grammar_deadline:
                    raise PickTooSlow
                chunk = ctypes.cast(base + start * size, ctypes.POINTER(C.llama_token_data))
                part = C.llama_token_data_array(chunk, min(CHECK_CHUNK, self.n_vocab - start), -1, False)
                C.llama_sampler_apply(self.grammar, ctypes.byref(part))
        array = C.llama_token_data_array(candidates, self.n_vocab, -1, False)
        C.llama_sampler_apply(self.chain, ctypes.byref(array))
        return array.data[array.selected].id

    def _allowed(self, token: int) -> bool:
        single = C.llama_token_data(token, 1.0, 0.0)
        array = C.llama_token_data_array(ctypes.pointer(single), 1, -1, False)
        C.llama_sampler_apply(self.grammar, ctypes.byref(array))
        return not math.isinf(single.logit)

    def close(self) -> None:
        """Free the samplers; while a pick runs, when it returns (cancelling never waits for it)."""
        pick, self._pick_in_flight = self._pick_in_flight, None
        if pick is not None and not pick.done():
            pick.add_done_callback(lambda _: self.close())
            return
        if self.chain:
            C.llama_sampler_free(self.chain)
            self.chain = None
        if self.grammar:
            C.llama_sampler_free(self.grammar)
            self.grammar = None


def _yield_to_others() -> None:
    """Lower this thread's CPU priority: a grammar's check is its own request's cost, and other
    requests' steps should not share the cores evenly with it (Linux: niceness is per thread)."""
    if sys.platform == "linux":
        thread = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + PICK_NICENESS))
        except OSError:
            pass


def _grammar_sampler(vocab, grammar: str, triggers: list[int]):
    if not triggers:
        return C.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    tokens = (C.llama_token * len(triggers))(*triggers)
    return C.llama_sampler_init_grammar_lazy_patterns(vocab, grammar.encode(), b"root", None, 0, tokens, len(triggers))


def _candidates(logits, n_vocab: int) -> ctypes.Array:
    """Every token of the vocabulary with the step's logit, as llama_token_data."""
    import numpy as np  # loaded only once a request has a grammar

    table = (C.llama_token_data * n_vocab)()
    view = np.frombuffer(table, dtype=[("id", np.int32), ("logit", np.float32), ("p", np.float32)])
    view["id"] = np.arange(n_vocab, dtype=np.int32)
    view["logit"] = np.ctypeslib.as_array(ctypes.cast(logits, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))
    return table
