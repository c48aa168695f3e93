"""Log-probabilities of generated tokens under the model's own distribution (before temperature
and truncation, as OpenAI reports them), for requests that ask: read from the step's logits."""

from __future__ import annotations

import ctypes
import math

from .events import TokenLogprob
from .native import NativeModel


def token_logprob(native: NativeModel, pointer, token: int, top: int) -> TokenLogprob:
    """`pointer`: the n_vocab logits the token was sampled from."""
    import numpy as np  # loaded only when a request asks for logprobs

    logits = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(native.n_vocab,))
    peak = float(logits.max())
    log_total = peak + math.log(float(np.exp(logits - peak).sum()))
    best = np.argpartition(-logits, top)[:top] if 0 < top < native.n_vocab else np.array([], dtype=int)
    best = best[np.argsort(-logits[best])]

    def entry(t: int) -> tuple[str, float, list[int]]:
        raw = native.piece(int(t))
        return raw.decode("utf-8", "replace"), float(logits[t]) - log_total, list(raw)

    text, logprob, raw = entry(token)
    return TokenLogprob(text, logprob, raw, [entry(t) for t in best], token, tuple(int(t) for t in best))
