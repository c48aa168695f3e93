"""A draft model: a smaller model of the same vocabulary that guesses the target's next tokens.

It holds its own llama_context with the target's slots. Before each step it catches every drafting
sequence up with the target's tokens (its cells past the first difference are dropped, so refused
draft tokens leave), then decodes one token for every drafting sequence per llama_decode, greedily,
until each has its length or reaches a token whose probability under the draft is below p_min
(llama.cpp's rule: that token and the rest are not guessed, as the target rarely keeps them).
Only a vocabulary that matches the target's as strictly as llama.cpp asks (common/speculative.cpp)
drafts: same type, same BOS/EOS use, at most 128 tokens more or fewer, the same text for every
shared token from id 5 on.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import UsageError
from .bindings import C
from .native import NativeModel

VOCAB_SIZE_SLACK = 128  # llama.cpp's SPEC_VOCAB_MAX_SIZE_DIFFERENCE
VOCAB_CHECK_FROM = 5  # llama.cpp's SPEC_VOCAB_CHECK_START_TOKEN_ID


def vocab_mismatch(target: NativeModel, draft: NativeModel) -> str | None:
    """Why `draft` cannot draft for `target` (None: it can)."""
    if C.llama_vocab_type(target.vocab) != C.llama_vocab_type(draft.vocab):
        return "their vocabularies are of different types"
    for what, uses, token in (
        ("BOS", C.llama_vocab_get_add_bos, C.llama_vocab_bos),
        ("EOS", C.llama_vocab_get_add_eos, C.llama_vocab_eos),
    ):
        used = uses(target.vocab)
        if used != uses(draft.vocab) or (used and token(target.vocab) != token(draft.vocab)):
            return f"their {what} tokens differ"
    if abs(target.n_vocab - draft.n_vocab) > VOCAB_SIZE_SLACK:
        return f"their vocabularies hold {target.n_vocab} and {draft.n_vocab} tokens"
    for token in range(VOCAB_CHECK_FROM, min(target.n_vocab, draft.n_vocab)):
        if C.llama_vocab_get_text(target.vocab, token) != C.llama_vocab_get_text(draft.vocab, token):
            return f"token {token} differs ({target.token_text(token)!r} against {draft.token_text(token)!r})"
    return None


class DraftModel:
    """The draft's model and context, one sequence per target slot."""

    def __init__(
        self,
        path: Path,
        target: NativeModel,
        n_threads: int,
        n_gpu_layers: int = 0,
        kv_type: str = "f16",
        p_min: float = 0.0,
    ) -> None:
        """n_gpu_layers and kv_type: where fit_draft.plan_draft puts it beside the target; p_min: the
        least probability of a drafted token (Speculation.p_min)."""
        self.native = NativeModel(
            path,
            n_ctx_seq=target.n_ctx_seq,
            n_seq=target.n_seq,
            n_gpu_layers=n_gpu_layers,
            n_threads=n_threads,
            n_batch=target.n_batch,
            kv_type=kv_type,
        )
        why = vocab_mismatch(target, self.native)
        if why:
            self.native.close()
            raise UsageError(
                f"{path.name} cannot draft for {target.path.name}: {why}.",
                "Choose a draft of the same family (R1-Distill-Qwen-1.5B for the Qwen distills).",
            )
        self.path = path
        self.p_min = p_min
        self.cached: list[list[int]] = [[] for _ in range(target.n_seq)]  # tokens each sequence's cells hold
        self._batch = C.llama_batch_init(target.n_batch, 0, 1)
        self.drafting_s = 0.0  # the last propose()'s time spent drafting, its catch-up left out

    def propose(self, wanted: list[tuple[int, list[int], int]]) -> list[list[int]]:
        """Drafts for (sequence, its tokens so far, length) each: the sequences catch up (batched,
        without logits), then one decode per drafted position for all of them; a sequence's draft
        ends before its first token less likely than p_min."""
        drafts: list[list[int]] = [[] for _ in wanted]
        behind: list[tuple[int, int]] = []
        for seq, tokens, length in wanted:
            if length:
                behind += [(seq, token) for token in self._trim(seq, tokens[:-1])]
        for start in range(0, len(behind), self.native.n_batch):
            if not self._decode(behind[start : start + self.native.n_batch], logits=False):
                return drafts
        feeding = [(i, seq, tokens[-1]) for i, (seq, tokens, length) in enumerate(wanted) if length]
        started = time.perf_counter()
        while feeding:
            if not self._decode([(seq, token) for _, seq, token in feeding], logits=True):
                break
            following = []
            for (i, seq, _), (token, sure) in zip(feeding, self._greedy(len(feeding)), strict=True):
                if not sure:
                    continue
                drafts[i].append(token)
                if len(drafts[i]) < wanted[i][2]:
                    following.append((i, seq, token))
            feeding = following
        self.drafting_s = time.perf_counter() - started
        return drafts

    def _trim(self, seq: int, tokens: list[int]) -> list[int]:
        """Drop the sequence's cells past where they agree with `tokens`; return the tokens still to feed."""
        cached = self.cached[seq]
        same = next(
            (k for k, (a, b) in enumerate(zip(cached, tokens, strict=False)) if a != b), min(len(cached), len(tokens))
        )
        self.native.forget(seq, same)
        del cached[same:]
        return tokens[same:]

    def _decode(self, pairs: list[tuple[int, int]], *, logits: bool) -> bool:
        batch = self._batch
        for n, (seq, token) in enumerate(pairs):
            batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = token, len(self.cached[seq]), 1, logits
            batch.seq_id[n][0] = seq
            self.cached[seq].append(token)
        batch.n_tokens = len(pairs)
        if C.llama_decode(self.native.ctx, batch) == 0:
            return True
        for seq, _ in pairs:  # a failed decode leaves unknown cells: start these sequences afresh
            self.native.forget(seq)
            self.cached[seq].clear()
        return False

    def _greedy(self, rows: int) -> list[tuple[int, bool]]:
        """Each row's most likely token and whether its probability reaches p_min."""
        import numpy as np  # loaded only where a draft model is

        logits = np.ctypeslib.as_array(C.llama_get_logits(self.native.ctx), shape=(rows, self.native.n_vocab))
        picks = logits.argmax(axis=1)
        if self.p_min <= 0:
            return [(token, True) for token in picks.tolist()]
        top = logits[np.arange(rows), picks][:, None]
        probability = 1 / np.exp(logits - top).sum(axis=1)  # the top token's softmax, without overflow
        return list(zip(picks.tolist(), (probability >= self.p_min).tolist(), strict=True))

    def close(self) -> None:
        C.llama_batch_free(self._batch)
        self.native.close()
