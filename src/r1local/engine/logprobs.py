"""Log-probabilities of generated tokens, for requests that ask, read from the step's logits: under
the model's own distribution (before temperature and truncation, as OpenAI reports them), or with
`post_sampling` under the distribution the token was drawn from (llama-server's
post_sampling_probs): logit_bias, top-k, top-p, min-p and temperature applied, in llama.cpp's order.
Repetition penalties and a grammar, which depend on the sequence so far, are not reflected."""

from __future__ import annotations

import ctypes
import math

from .events import TokenLogprob
from .native import NativeModel
from .params import SamplingParams


def token_logprob(native: NativeModel, pointer, token: int, params: SamplingParams) -> TokenLogprob:
    """`pointer`: the n_vocab logits the token was sampled from."""
    import numpy as np  # loaded only when a request asks for logprobs

    logits = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(native.n_vocab,))
    top = params.logprobs or 0
    if params.post_sampling:
        candidates, logprobs = _drawn_from(logits.astype(np.float64), params)
        best = candidates[:top]
        chosen = {int(t): float(lp) for t, lp in zip(candidates, logprobs, strict=True)}.get(token, -math.inf)
        lookup = dict(zip(candidates[:top].tolist(), logprobs[:top].tolist(), strict=True))
    else:
        peak = float(logits.max())
        log_total = peak + math.log(float(np.exp(logits - peak).sum()))
        best = np.argpartition(-logits, top)[:top] if 0 < top < native.n_vocab else np.array([], dtype=int)
        best = best[np.argsort(-logits[best])]
        chosen = float(logits[token]) - log_total
        lookup = {int(t): float(logits[t]) - log_total for t in best}

    def entry(t: int, logprob: float) -> tuple[str, float, list[int]]:
        raw = native.piece(int(t))
        return raw.decode("utf-8", "replace"), logprob, list(raw)

    text, logprob, raw = entry(token, chosen)
    top_ids = tuple(int(t) for t in best)
    return TokenLogprob(text, logprob, raw, [entry(t, lookup[t]) for t in top_ids], token, top_ids)


def _drawn_from(logits, params: SamplingParams):
    """The candidates the sampler chain keeps, most likely first, and their log-probabilities."""
    import numpy as np

    for token, bias in params.logit_bias:
        logits[token] += bias
    if params.temperature <= 0.0:  # greedy: llama-server reports the whole softmax
        keep = np.argsort(-logits)[: max(params.logprobs or 0, 1)]
        return keep, logits[keep] - _log_sum_exp(logits)
    if 0 < params.top_k < len(logits):
        keep = np.argpartition(-logits, params.top_k)[: params.top_k]
        keep = keep[np.argsort(-logits[keep])]
    else:
        keep = np.argsort(-logits)
    if params.top_p < 1.0:
        cumulative = np.cumsum(np.exp(logits[keep] - _log_sum_exp(logits[keep])))
        keep = keep[: int(np.searchsorted(cumulative, params.top_p)) + 1]
    if params.min_p > 0.0:
        keep = keep[logits[keep] >= logits[keep[0]] + math.log(params.min_p)]
    keep = keep[np.isfinite(logits[keep])]  # a banned token is never drawn
    scaled = logits[keep] / params.temperature
    return keep, scaled - _log_sum_exp(scaled)


def _log_sum_exp(values) -> float:
    import numpy as np

    peak = float(values.max())
    return peak + math.log(float(np.exp(values - peak).sum()))
