"""A llama.cpp sampler chain built from one request's SamplingParams."""

from __future__ import annotations

import random

from ..errors import UsageError
from .bindings import C
from .params import SamplingParams

_RANDOM = random.SystemRandom()


class Sampler:
    """Owns a llama_sampler chain; sample() also records the token for penalties and grammar."""

    def __init__(self, params: SamplingParams, vocab, n_vocab: int) -> None:
        self.chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
        add = lambda s: C.llama_sampler_chain_add(self.chain, s)  # noqa: E731
        try:
            if params.grammar:
                grammar = _grammar_sampler(vocab, params.grammar, params.grammar_triggers)
                if not grammar:
                    raise UsageError("The grammar (response_format) could not be parsed.")
                add(grammar)
            if (
                params.repeat_penalty != 1.0
                or params.presence_penalty != 0.0
                or params.frequency_penalty != 0.0
            ):
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

    def sample(self, ctx, batch_index: int) -> int:
        return C.llama_sampler_sample(self.chain, ctx, batch_index)

    def accept(self, token: int) -> None:
        """A token the model did not choose but will see (the reasoning budget's): grammar and
        penalties follow it."""
        C.llama_sampler_accept(self.chain, token)

    def close(self) -> None:
        if self.chain:
            C.llama_sampler_free(self.chain)
            self.chain = None


def _grammar_sampler(vocab, grammar: str, triggers: list[int]):
    if not triggers:
        return C.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    tokens = (C.llama_token * len(triggers))(*triggers)
    return C.llama_sampler_init_grammar_lazy_patterns(vocab, grammar.encode(), b"root", None, 0, tokens, len(triggers))
