"""Embeddings from any GGUF: a second llama.cpp context on the loaded weights, made on first use.

An embedding model (BERT, nomic-bert...) pools as its GGUF says (mean, CLS or last token); a chat
model is mean-pooled; `serve --pooling` chooses for every model, as llama-server's flag does. Pooled
vectors are L2-normalised, as OpenAI's, Ollama's and llama-server's are; with pooling "none" each
input gives one raw vector per token.
Inputs are packed several to a batch, one sequence each. The context is the embedder's own, so
embedding runs beside the scheduler's decode steps instead of inside them.
"""

from __future__ import annotations

import math
import threading

from .. import config
from ..errors import ContextOverflow, ModelFileError, R1Error, UsageError
from .bindings import C
from .native import NativeModel

MAX_SEQUENCES = 8  # inputs per llama.cpp batch
MAX_CONTEXT = 2048  # a chat model's embedding context: inputs past this are cut or refused
# llama-server's --pooling values. "rank" is left out: llama.cpp aborts the process when a model
# without a classifier head is run with it, and reranking is not served here.
POOLING = dict(
    zip(
        config.POOLINGS,
        (C.LLAMA_POOLING_TYPE_NONE, C.LLAMA_POOLING_TYPE_MEAN, C.LLAMA_POOLING_TYPE_CLS, C.LLAMA_POOLING_TYPE_LAST),
        strict=True,
    )
)


def normalize(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else vector


class Embedder:
    def __init__(self, native: NativeModel, architecture: str, n_threads: int, pooling: str | None = None) -> None:
        self.native = native
        # mean, CLS or last as the file says; none (per-token vectors) or rank (rerankers) get mean pooling
        own_pooling = native.meta(f"{architecture}.pooling_type") in ("1", "2", "3")
        self.n_ctx = native.n_ctx_train if own_pooling else min(native.n_ctx_train, MAX_CONTEXT)
        self.per_token = pooling == "none"
        cparams = C.llama_context_default_params()
        cparams.embeddings = True
        if pooling is not None:
            cparams.pooling_type = POOLING[pooling]
        else:
            cparams.pooling_type = C.LLAMA_POOLING_TYPE_UNSPECIFIED if own_pooling else C.LLAMA_POOLING_TYPE_MEAN
        cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = self.n_ctx  # non-causal models see a whole input at once
        cparams.n_seq_max = MAX_SEQUENCES
        cparams.kv_unified = True
        cparams.n_threads = cparams.n_threads_batch = n_threads
        cparams.no_perf = True
        self.ctx = C.llama_init_from_model(native.model, cparams)
        if not self.ctx:
            raise ModelFileError(
                f"llama.cpp could not create an embedding context for {native.path.name}.",
                "Free some memory, or use a dedicated embedding model.",
            )
        self.n_embd = C.llama_model_n_embd(native.model)
        self.encoder_only = bool(C.llama_model_has_encoder(native.model)) and not C.llama_model_has_decoder(
            native.model
        )
        self._batch = C.llama_batch_init(self.n_ctx, 0, MAX_SEQUENCES)
        self._lock = threading.Lock()  # one batch at a time on this context

    def tokens(self, text: str | list[int | str], truncate: bool) -> list[int]:
        """An input's tokens: text is tokenised as the model's own embed() does; token ids are checked.
        A list may mix ids and text, as llama-server reads one: the beginning-of-text token only
        before a first piece of text."""
        pieces = [text] if isinstance(text, str) else text
        tokens = []
        for i, piece in enumerate(pieces):
            if isinstance(piece, str):
                tokens += self.native.tokenize(piece, add_special=i == 0, parse_special=False)
            elif 0 <= piece < self.native.n_vocab:
                tokens.append(piece)
            else:
                raise UsageError(f"Token ids must be between 0 and {self.native.n_vocab - 1}.", param="input")
        if len(tokens) > self.n_ctx:
            if not truncate:
                raise ContextOverflow(  # "too large", as llama-server words it, so its clients recognise it
                    f"An input of {len(tokens)} tokens is too large: this model embeds at most {self.n_ctx}.",
                    "Shorten the input, or let the server cut it (truncate: true).",
                )
            tokens = tokens[: self.n_ctx]
        return tokens or [self.native.bos if self.native.bos >= 0 else 0]

    def embed(self, inputs: list[list[int]]) -> list[list[list[float]]]:
        """Each tokenised input's rows, in order: its one normalised vector, or with pooling "none"
        one raw vector per token."""
        vectors: list[list[list[float]]] = []
        with self._lock:
            group: list[list[int]] = []
            for tokens in inputs:
                if group and (len(group) == MAX_SEQUENCES or sum(map(len, group)) + len(tokens) > self.n_ctx):
                    vectors += self._run(group)
                    group = []
                group.append(tokens)
            if group:
                vectors += self._run(group)
        return vectors

    def _run(self, group: list[list[int]]) -> list[list[list[float]]]:
        batch, n = self._batch, 0
        for seq, tokens in enumerate(group):
            for pos, token in enumerate(tokens):
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, pos, 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = True  # every token's output feeds the pooling
                n += 1
        batch.n_tokens = n
        C.llama_memory_clear(C.llama_get_memory(self.ctx), True)
        status = (C.llama_encode if self.encoder_only else C.llama_decode)(self.ctx, batch)
        if status != 0:
            raise R1Error(f"llama.cpp could not compute embeddings (status {status}).")
        if self.per_token:
            starts = [sum(map(len, group[:seq])) for seq in range(len(group) + 1)]
            return [
                [C.llama_get_embeddings_ith(self.ctx, i)[: self.n_embd] for i in range(starts[seq], starts[seq + 1])]
                for seq in range(len(group))
            ]
        return [[normalize(C.llama_get_embeddings_seq(self.ctx, seq)[: self.n_embd])] for seq in range(len(group))]

    def close(self) -> None:
        if self.ctx:
            C.llama_batch_free(self._batch)
            C.llama_free(self.ctx)
            self.ctx = None
