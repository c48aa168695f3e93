"""`chat`: a conversation in the terminal, with line editing and history (prompt_toolkit), multi-line
input (`\"\"\"` blocks, pasted text as one message), slash commands, and Ctrl-C that stops an answer or
clears the line but never ends the conversation (Ctrl-D or /bye does)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import config
from ..engine.params import SamplingParams
from ..errors import R1Error
from .app import command, err
from .backend import Backend, open_backend
from .chat_commands import slash_command, stats
from .options import (
    CTX_OPT,
    DRAFT_MAX_OPT,
    DRAFT_MIN_OPT,
    DRAFT_OPT,
    DRAFT_P_MIN_OPT,
    GPU_OPT,
    HIDE_THINK_OPT,
    KV_TYPE_OPT,
    LOCAL_OPT,
    MAX_TOKENS_OPT,
    MODEL_ARG,
    NO_THINK_OPT,
    RAW_OPT,
    RPC_OPT,
    SEED_OPT,
    SPEC_OPT,
    SPLIT_OPT,
    TEMPERATURE_OPT,
    THINK_BUDGET_OPT,
    THREADS_OPT,
    TOP_P_OPT,
    YES_OPT,
    chat_request,
    sampling,
    speculation,
)
from .printer import Printer
from .run import consume

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession


@dataclass
class Conversation:
    params: SamplingParams
    think: bool | None = None  # None: as the model does by default
    hide_think: bool = False
    raw: bool = False  # the model's control sequences reach the terminal
    verbose: bool = False  # token counts and rates after each answer
    wordwrap: bool = True  # answers wrap between words on a terminal
    system: str | None = None
    messages: list[dict] = field(default_factory=list)

    def request(self) -> list[dict]:
        return ([{"role": "system", "content": self.system}] if self.system else []) + self.messages


class LineReader:
    """prompt_toolkit on a terminal (or the input it is given), plain lines from a pipe.
    read() raises EOFError to leave and KeyboardInterrupt for a cleared line."""

    def __init__(self, session: PromptSession | None = None) -> None:
        if session is None and sys.stdin is not None and sys.stdin.isatty():
            from prompt_toolkit import PromptSession  # the line editor loads only for a terminal
            from prompt_toolkit.history import FileHistory

            config.home().mkdir(parents=True, exist_ok=True)
            session = PromptSession(history=FileHistory(str(config.home() / "chat_history")))
        self.session = session

    def _line(self, prompt: str) -> str:
        if self.session is not None:
            return self.session.prompt(prompt)
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    def read(self) -> str:
        line = self._line(">>> ")
        if not line.lstrip().startswith('"""'):
            return line
        text = line.lstrip()[3:]
        while not text.rstrip().endswith('"""'):
            text += "\n" + self._line("... ")
        return text.rstrip()[:-3]


@command()
def chat(
    model: str = MODEL_ARG,
    no_think: bool = NO_THINK_OPT,
    hide_think: bool = HIDE_THINK_OPT,
    raw: bool = RAW_OPT,
    temperature: float | None = TEMPERATURE_OPT,
    top_p: float | None = TOP_P_OPT,
    max_tokens: int | None = MAX_TOKENS_OPT,
    seed: int | None = SEED_OPT,
    think_budget: int | None = THINK_BUDGET_OPT,
    ctx: int | None = CTX_OPT,
    threads: int | None = THREADS_OPT,
    gpu_layers: int | None = GPU_OPT,
    tensor_split: str | None = SPLIT_OPT,
    rpc: str | None = RPC_OPT,
    kv_type: str | None = KV_TYPE_OPT,
    spec: str | None = SPEC_OPT,
    draft_max: int = DRAFT_MAX_OPT,
    draft_min: int = DRAFT_MIN_OPT,
    draft_p_min: float = DRAFT_P_MIN_OPT,
    draft: str | None = DRAFT_OPT,
    yes: bool = YES_OPT,
    local: bool = LOCAL_OPT,
) -> None:
    """Chat in the terminal, keeping the conversation; /help lists the commands.

    Example: r1local chat r1 --hide-think
    """
    conversation = Conversation(
        sampling(temperature, top_p, max_tokens, seed, think_budget), False if no_think else None, hide_think, raw
    )
    drafts = speculation(spec, draft, draft_max, draft_min, draft_p_min)
    with open_backend(model, ctx, threads, gpu_layers, yes, local, rpc, tensor_split, kv_type, drafts) as backend:
        err.print(
            f"{model} ready ({backend.where}). /help for commands, Ctrl-D or /bye to leave.", style="dim", markup=False
        )
        converse(backend, model, conversation, LineReader())


def converse(backend: Backend, model: str, conversation: Conversation, reader: LineReader) -> None:
    while True:
        try:
            text = reader.read()
        except KeyboardInterrupt:
            err.print("(cleared; Ctrl-D or /bye leaves)", style="dim")
            continue
        except EOFError:
            return
        if not text.strip():
            continue
        if text.startswith("/"):
            if not slash_command(text.strip(), backend, model, conversation):
                return
            continue
        reply(backend, conversation, text)


def reply(backend: Backend, conversation: Conversation, text: str) -> None:
    """One turn. An interrupted answer keeps what was written (nothing written: the turn is dropped)."""
    conversation.messages.append({"role": "user", "content": text})
    printer = Printer(show_reasoning=not conversation.hide_think, raw=conversation.raw, wrap=conversation.wordwrap)
    try:
        stream = backend.chat(chat_request(conversation.request(), conversation.think, conversation.params))
        result, interrupted = consume(stream, printer)
    except KeyboardInterrupt:  # while the request was being sent
        result, interrupted = None, True
    except R1Error as error:  # refused (a setting the model lacks, a busy server...): the session goes on
        printer.end()
        err.print(f"error: {error}", style="red", markup=False)
        conversation.messages.pop()
        return
    printer.end()
    done = result.done if result else None
    if conversation.verbose and done is not None and done.finish_reason != "error":
        err.print(stats(done), style="dim", markup=False)
    if done is not None and done.finish_reason == "error":
        err.print(f"error: generation failed: {done.error}", style="red", markup=False)
    elif result and result.content.strip():
        conversation.messages.append({"role": "assistant", "content": result.content})
        if interrupted or done is None or done.finish_reason == "cancelled":
            err.print("(stopped; the answer so far stays in the conversation)", style="dim")
        elif done.finish_reason == "length":
            err.print("(cut at max_tokens or a full context: /set max_tokens to change it)", style="dim")
        return
    elif interrupted or done is None or done.finish_reason == "cancelled":
        err.print("(stopped)", style="dim")
    elif done.finish_reason == "length":
        err.print(
            "(the reasoning used every token before an answer: /set max_tokens off, or /set think off)", style="dim"
        )
    conversation.messages.pop()
