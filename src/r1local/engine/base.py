"""The one seam between the engines and everything above them.

An engine is loaded with a plan, takes a chat or a completion and answers with a Stream of the
same events (reasoning delta, content delta, done with usage and timings); the stream cancels;
the engine reports stats and closes. The CLI and the server only ever hold an `Engine`.

What makes an R1 distill behave like one lives here, once, for every engine: the model's own chat
template, `<think>\\n` forced or an empty think block, earlier reasoning dropped, the system
prompt folded in, tools and earlier calls in R1's own tokens, a final assistant message continued,
and the oldest turns trimmed first when a chat leaves no room for the reply.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ContextOverflow, UsageError
from . import history
from .capabilities import Capabilities, declared
from .params import SamplingParams
from .stream import Stream
from .template import ChatTemplate, RenderedPrompt, preset_template
from .vocab import VocabMethods


class Engine(ABC):
    """A loaded model behind one engine. Subclasses set the attributes and implement `_submit`."""

    engine: ClassVar[str]  # "llama.cpp", "openvino"
    name: str
    path: Path  # the model file or folder it was loaded from
    template: ChatTemplate
    n_ctx: int  # tokens one request may span (prompt + answer)
    n_parallel: int  # requests generated at once
    n_gpu_layers: int = 0  # llama.cpp's offload; 0 elsewhere
    device: str = "CPU"  # where it runs, as the engine names it
    prompt_limit: int | None = None  # a compiled maximum prompt length (the NPU's static shapes)
    info: Any = None  # the GGUF's metadata when loaded from a GGUF
    load_note: str | None = None  # one line on how the load departed from its plan, for the user
    vocab: Any = None  # the tokenizer (a GGUF's VocabMethods, or the engine's own)
    # What a request that sets none gets (serve --n-predict, --seed, --temperature); None: up to the
    # context, a fresh seed, SamplingParams' temperature
    default_max_tokens: int | None = None
    default_seed: int | None = None
    default_temperature: float | None = None

    def memory_bytes(self) -> tuple[int, int] | None:
        """(RAM, VRAM) the engine allocated for the model, when it can tell."""
        return None

    @property
    def is_r1(self) -> bool:
        return self.template.is_r1

    @property
    def capabilities(self) -> Capabilities:
        """What this engine does with this model; requests beyond it are refused before any work."""
        return declared(self.engine, self.template, self.n_ctx)

    def chat_template(self, source: str | None = None) -> ChatTemplate:
        """The model's chat template, or a preset's in its place."""
        if source is None or source == self.template.source:
            return self.template
        return preset_template(source, self.template.bos_token, self.template.eos_token)

    # -- requests --
    def chat(
        self,
        messages: list[dict],
        *,
        think: bool | None = None,
        params: SamplingParams | None = None,
        tool_list: list[dict] | None = None,
        calls: bool = True,
        continue_final: bool = True,
        trim: bool = True,
        template: str | None = None,
    ) -> Stream:
        """`template`: a preset's chat template in place of the model's (None: the model's).
        `tool_list`: functions the model may call; their calls come back as ToolCall events
        unless calls=False (OpenAI's tool_choice "none": the model knows the tools, calls none).
        A last assistant message is continued (continue_final=False starts a new turn after it).
        trim: drop the oldest turns (never the system prompt or the last user turn) when the chat
        leaves too little room for the reply or passes a compiled prompt limit; the stream's
        `trimmed_messages` says how many went. Without trim a chat that does not fit is refused."""
        params = self._defaulted(params)
        think = self.is_r1 if think is None else think

        chat_template = self.chat_template(template)

        def render(kept: list[dict]) -> RenderedPrompt:
            return chat_template.render(kept, think=think, tool_list=tool_list, continue_final=continue_final)

        kept, dropped = list(messages), 0
        if trim:
            context = params.context(self.n_ctx)
            limit = context - history.reply_room(context, params.max_tokens)
            if self.prompt_limit is not None:
                limit = min(limit, self.prompt_limit)
            kept, dropped = history.trim(kept, lambda kept: len(self.prompt_tokens(render(kept).text)), limit)
        rendered = render(kept)
        tokens = self.prompt_tokens(rendered.text)
        self._check_prompt(len(tokens))
        stream = self._submit(
            tokens,
            params,
            split_reasoning=self.is_r1,
            in_reasoning=rendered.opens_think,
            parse_tools=bool(tool_list) and calls,
        )
        stream.trimmed_messages = dropped
        return stream

    def complete(self, prompt: str, *, params: SamplingParams | None = None, suffix: str | None = None) -> Stream:
        """Raw text, no template; with a `suffix` the model fills in what goes between (FIM)."""
        tokens = self.prompt_tokens(prompt) if suffix is None else self.fill_in_middle(prompt, suffix)
        return self._generate(tokens, params)

    def complete_tokens(self, tokens: list[int], *, params: SamplingParams | None = None) -> Stream:
        """A prompt given as token ids (llama-server's clients send them), generated from as it is."""
        n_vocab = self.gguf_vocab().n_vocab
        if not tokens or any(not 0 <= t < n_vocab for t in tokens):
            raise UsageError(
                f"A prompt of token ids needs at least one id, each between 0 and {n_vocab - 1}.", param="prompt"
            )
        return self._generate(tokens, params)

    def infill(
        self,
        prefix: str,
        suffix: str,
        *,
        files: Sequence[tuple[str, str]] = (),
        middle: str = "",
        params: SamplingParams | None = None,
    ) -> Stream:
        """What goes between `prefix` and `suffix`, other `files` (name, text) given as context and
        the answer started with `middle`: llama-server's /infill."""
        return self._generate(self.fill_in_middle(prefix, suffix, files=files, middle=middle), params)

    def _generate(self, tokens: list[int], params: SamplingParams | None = None) -> Stream:
        self._check_prompt(len(tokens))
        return self._submit(tokens, self._defaulted(params), split_reasoning=False, in_reasoning=False)

    def _defaulted(self, params: SamplingParams | None) -> SamplingParams:
        """`params` with this engine's defaults where the request left the length, the seed or the
        temperature open."""
        params = params or SamplingParams()
        update: dict[str, float] = {}
        if params.max_tokens is None and self.default_max_tokens is not None:
            update["max_tokens"] = min(self.default_max_tokens, params.context(self.n_ctx))
        if params.seed is None and self.default_seed is not None:
            update["seed"] = self.default_seed
        if "temperature" not in params.model_fields_set and self.default_temperature is not None:
            update["temperature"] = self.default_temperature
        return params.model_copy(update=update) if update else params

    def fill_in_middle(
        self, prefix: str, suffix: str, *, files: Sequence[tuple[str, str]] = (), middle: str = ""
    ) -> list[int]:
        """The model's own fill-in-the-middle prompt, as llama-server builds it: the other files first
        (after its repository and file-separator tokens where the vocabulary has them, else as plain
        text), then <prefix-token> prefix <suffix-token> suffix <middle-token> middle."""
        vocab = self.gguf_vocab()
        pre, suf, mid = vocab.fim_tokens()
        if min(pre, suf, mid) < 0:
            raise UsageError(
                f"{self.name} has no fill-in-the-middle tokens, so it cannot complete before a suffix.",
                "Send the request without suffix.",
                param="suffix",
            )
        text = lambda t: vocab.tokenize(t, add_special=False, parse_special=False)  # noqa: E731
        context: list[int] = []
        rep, sep = vocab.fim_repo_tokens()
        if files and min(rep, sep) >= 0:  # Qwen2.5-Coder's repository-level layout
            context = [rep, *text("myproject\n")]
            for name, body in files:
                context += [sep, *text(f"{name}\n{body}")]
            context += [sep, *text("filename\n")]
        else:
            for _name, body in files:
                context += text(body)
        return [*context, pre, *text(prefix), suf, *text(suffix), mid, *text(middle)]

    def embed(self, texts: Sequence[str | list[int | str]], *, truncate: bool = True) -> tuple[list[list[float]], int]:
        """Normalised embeddings of `texts` and the tokens they took."""
        rows, tokens = self.embed_rows(texts, truncate=truncate)
        return [vectors[0] for vectors in rows], tokens

    def embed_rows(
        self, texts: Sequence[str | list[int | str]], *, truncate: bool = True, pooling: str | None = None
    ) -> tuple[list[list[list[float]]], int]:
        """Each input's vectors (one pooled, or one per token under pooling "none") and the tokens
        they took; engines that can override this."""
        raise UsageError(
            f"The {self.engine} engine does not compute embeddings.",
            "Load the model on llama.cpp (a GGUF without @openvino) for embeddings.",
            param="model",
        )

    def gguf_vocab(self) -> VocabMethods:
        """The GGUF tokenizer, for the routes that speak in token ids."""
        if not isinstance(self.vocab, VocabMethods):
            raise UsageError(
                f"{self.name} has no GGUF tokenizer here, so it cannot work in token ids.",
                "Use a model loaded from a GGUF.",
                param="model",
            )
        return self.vocab

    def _check_prompt(self, n_tokens: int) -> None:
        if self.prompt_limit is not None and n_tokens > self.prompt_limit:
            raise ContextOverflow(
                f"The prompt is {n_tokens} tokens; this model was compiled for prompts of at most "
                f"{self.prompt_limit} on the {self.device}.",
                "Shorten the prompt, or load it with a larger maximum prompt length "
                "(R1LOCAL_NPU_MAX_PROMPT; compiling takes longer).",
            )

    @abstractmethod
    def prompt_tokens(self, text: str) -> list[int]:
        """The token ids of a rendered prompt, with the beginning-of-text token the model expects."""

    @abstractmethod
    def _submit(
        self,
        tokens: list[int],
        params: SamplingParams,
        *,
        split_reasoning: bool,
        in_reasoning: bool,
        parse_tools: bool = False,
    ) -> Stream:
        """Queue one generation; raise Overloaded (503) when the queue is full."""

    def admission_held(self) -> AbstractContextManager[None]:
        """A block whose queued generations start in one step (a request's `n` choices); an engine
        without a shared step starts each as it comes."""
        return nullcontext()

    @abstractmethod
    def stats(self) -> dict:
        """Slots, queue and counters, for /metrics."""

    @abstractmethod
    def close(self) -> None:
        """Finish every request (cancelled) and free the model."""

    def describe(self) -> dict:
        """What `ps`-style listings show about the engine in use."""
        return {"engine": self.engine, "device": self.device, "context_length": self.n_ctx, "parallel": self.n_parallel}

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
