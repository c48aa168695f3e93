"""A GGUF's tokenizer through llama.cpp: the same token ids and pieces for every engine that reads
the GGUF (OpenVINO's own GGUF tokenizer treats special tokens such as <｜User｜> as plain text)."""

from __future__ import annotations

import ctypes
from pathlib import Path

from ..errors import ModelFileError
from .bindings import C
from .builtin_template import builtin_name
from .template import ChatTemplate
from .text import clean


class VocabMethods:
    """Token and metadata access over `self.model` / `self.vocab` (a llama_model and its vocabulary)."""

    model: object
    vocab: object

    def _init_vocab(self) -> None:
        self.vocab = C.llama_model_get_vocab(self.model)
        self.n_vocab = C.llama_vocab_n_tokens(self.vocab)
        self.bos = C.llama_vocab_bos(self.vocab)
        self.eos = C.llama_vocab_eos(self.vocab)
        self.add_bos = bool(C.llama_vocab_get_add_bos(self.vocab))
        self._piece_buf = ctypes.create_string_buffer(256)

    # -- metadata --
    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1 << 16)
        n = C.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        if n < 0:
            return None
        if n >= len(buf):  # long values such as chat templates
            buf = ctypes.create_string_buffer(n + 1)
            C.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace")

    def token_text(self, token: int) -> str:
        text = C.llama_vocab_get_text(self.vocab, token)
        return text.decode("utf-8", "replace") if text else ""

    def chat_template(self) -> ChatTemplate:
        """The GGUF's own chat template, with its begin and end markers; without one, the template
        llama.cpp has built in for the model's architecture."""
        return ChatTemplate(
            self.meta("tokenizer.chat_template"),
            self.token_text(self.bos) if self.bos >= 0 else "",
            self.token_text(self.eos) if self.eos >= 0 else "",
            builtin=builtin_name(
                self.meta("general.architecture") or "", lambda text: self.single_token(text) is not None
            ),
        )

    # -- tokens --
    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        data = clean(text).encode("utf-8")  # lone surrogates (from JSON escapes, argv bytes) as U+FFFD
        cap = len(data) + 8
        buf = (C.llama_token * cap)()
        n = C.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (C.llama_token * cap)()
            n = C.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        return list(buf[:n])

    def prompt_tokens(self, text: str) -> list[int]:
        """A rendered prompt's ids, with the beginning-of-text token exactly once when the model wants it."""
        tokens = self.tokenize(text, add_special=False)
        if self.add_bos and (not tokens or tokens[0] != self.bos):
            tokens.insert(0, self.bos)
        return tokens

    def single_token(self, text: str) -> int | None:
        """The id of the token that is exactly `text` (special tokens included), if there is one."""
        tokens = self.tokenize(text, add_special=False)
        return tokens[0] if len(tokens) == 1 else None

    def fim_tokens(self) -> tuple[int, int, int]:
        """Fill-in-the-middle prefix, suffix and middle tokens; -1 where the vocabulary has none."""
        return (C.llama_vocab_fim_pre(self.vocab), C.llama_vocab_fim_suf(self.vocab), C.llama_vocab_fim_mid(self.vocab))

    def fim_repo_tokens(self) -> tuple[int, int]:
        """The repository-name and file-separator tokens of repo-level fill-in-the-middle; -1 where absent."""
        return C.llama_vocab_fim_rep(self.vocab), C.llama_vocab_fim_sep(self.vocab)

    def piece(self, token: int) -> bytes:
        """A token's bytes, special tokens (such as <think>) rendered as text."""
        buf = self._piece_buf
        n = C.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = C.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        return buf.raw[:n]

    def is_eog(self, token: int) -> bool:
        return bool(C.llama_vocab_is_eog(self.vocab, token))


class LlamaVocab(VocabMethods):
    """Only the vocabulary of a GGUF (llama.cpp's vocab_only load: no weights are read)."""

    def __init__(self, path: Path) -> None:
        from .native import _init_backend

        _init_backend()
        params = C.llama_model_default_params()
        params.vocab_only = True
        self.model = C.llama_model_load_from_file(str(path).encode(), params)
        if not self.model:
            raise ModelFileError(
                f"llama.cpp could not read the tokenizer of {path.name}.",
                "Download the file again, or use another GGUF of this model.",
            )
        self._init_vocab()

    def close(self) -> None:
        if self.model:
            C.llama_model_free(self.model)
            self.model = None
