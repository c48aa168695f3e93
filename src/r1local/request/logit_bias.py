"""logit_bias as OpenAI and llama-server clients send it, turned into (token id, bias) pairs:
an object of token ids (OpenAI: {"15043": -100}) or of text, or llama-server's [[token, bias]]
pairs, a token being an id or text (each of its tokens biased); a bias of false bans the token."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..engine.base import Engine
from ..engine.params import SamplingParams
from ..engine.vocab import VocabMethods

MAX_BIASED = 1024  # entries of one request (OpenAI allows 300)
MAX_TEXT = 256  # characters of a text key: a word or a phrase, not a document

Key = Annotated[str, Field(max_length=MAX_TEXT)]
Bias = float | bool
LogitBias = (
    Annotated[dict[Key, Bias], Field(max_length=MAX_BIASED)]
    | Annotated[list[tuple[int | Key, Bias]], Field(max_length=MAX_BIASED)]
)


def token_biases(spec: LogitBias | None, vocab: VocabMethods) -> list[tuple[int, float]]:
    """Ids outside the vocabulary are skipped and `true` means nothing, as in llama-server."""
    pairs = list(spec.items()) if isinstance(spec, dict) else list(spec or [])
    biases: list[tuple[int, float]] = []
    for token, bias in pairs:
        if bias is True:
            continue
        value = float("-inf") if bias is False else float(bias)
        if isinstance(token, str) and token.lstrip("-").isdigit():
            token = int(token)
        if isinstance(token, int):
            ids = [token] if 0 <= token < vocab.n_vocab else []
        else:
            ids = vocab.tokenize(token, add_special=False, parse_special=False)
        biases += [(t, value) for t in ids]
    return biases


def biased(params: SamplingParams, spec: LogitBias | None, model: Engine) -> SamplingParams:
    """`params` with the request's biases (a model without a GGUF tokenizer refuses them)."""
    if spec:
        params.logit_bias = token_biases(spec, model.gguf_vocab())
    return params
