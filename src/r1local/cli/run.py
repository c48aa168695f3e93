"""`run`: one prompt, one answer; and the reading of a stream into a result and an exit code,
which `chat` shares."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer
from rich.highlighter import JSONHighlighter

from ..engine.events import Done, Result
from ..errors import INTERRUPTED_EXIT, MAX_TOKENS_EXIT, UsageError, exit_codes_help
from ..units import plural
from .app import command, err, out
from .backend import open_backend
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
from .terminal import json_text

if TYPE_CHECKING:
    from ..client import RemoteStream
    from ..engine.stream import Stream


def consume(stream: Stream | RemoteStream, on_event=None) -> tuple[Result, bool]:
    """Gather a stream; Ctrl-C (while waiting or while printing) cancels the request and still
    returns what arrived, and whether it was interrupted."""
    result, interrupted = Result(), False
    events = iter(stream)
    while True:
        try:
            event = next(events)
            result.add(event)
            if on_event and not isinstance(event, Done):
                on_event(event)
        except KeyboardInterrupt:
            stream.cancel()
            interrupted = True
        except StopIteration:
            return result, interrupted


def outcome(result: Result, interrupted: bool, max_tokens: int | None) -> int:
    """The exit code a finished request earns, after one line on stderr for anything but an answer."""
    done = result.done
    if interrupted or done is None or done.finish_reason == "cancelled":
        err.print("(interrupted)", style="dim")
        return INTERRUPTED_EXIT
    if done.finish_reason == "error":
        err.print(f"error: generation failed: {done.error}", style="red", markup=False)
        return 1
    if done.finish_reason == "length":
        used = done.usage.completion_tokens
        if max_tokens is None:
            err.print(
                f"The context filled up after {plural(used, 'token')}, before the answer ended. "
                "Start with a larger --ctx.",
                style="yellow",
                markup=False,
            )
        elif not result.content.strip():
            err.print(
                f"The reasoning used all {plural(used, 'token')} of --max-tokens before an answer began. "
                "Raise --max-tokens (or leave it out), or pass --no-think.",
                style="yellow",
                markup=False,
            )
        else:
            err.print(
                f"The answer was cut at --max-tokens {max_tokens}. Raise it for the rest.", style="yellow", markup=False
            )
        return MAX_TOKENS_EXIT
    return 0


def read_prompt(prompt: str | None) -> str:
    """The prompt argument, piped stdin, or both as Ollama joins them: prompt, blank line, stdin."""
    piped = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read().decode("utf-8", "replace")
    if prompt is None and piped is None:
        raise UsageError("No prompt given.", 'Pass it as an argument or pipe it: echo "hi" | r1local run MODEL')
    text = "\n\n".join(part for part in (prompt, piped) if part and part.strip())
    if not text.strip():
        raise UsageError("The prompt is empty.")
    return text


@command(epilog=exit_codes_help())
def run(
    model: str = MODEL_ARG,
    prompt: str | None = typer.Argument(
        None, help="The prompt. Piped stdin is read too and added after it, as a document to work on."
    ),
    no_think: bool = NO_THINK_OPT,
    hide_think: bool = HIDE_THINK_OPT,
    raw: bool = RAW_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object at the end."),
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
    """Answer one prompt: the answer to stdout, the reasoning to stderr. A running r1local serve
    answers when it has the model (no loading wait); otherwise the model loads here.

    Example: git diff | r1local run r1 "Review this change" > review.md
    """
    prompt = read_prompt(prompt)
    params = sampling(temperature, top_p, max_tokens, seed, think_budget)
    drafts = speculation(spec, draft, draft_max, draft_min, draft_p_min)
    with open_backend(model, ctx, threads, gpu_layers, yes, local, rpc, tensor_split, kv_type, drafts) as backend:
        stream = backend.chat(chat_request([{"role": "user", "content": prompt}], False if no_think else None, params))
        printer = None if as_json else Printer(show_reasoning=not hide_think, raw=raw)
        result, interrupted = consume(stream, printer)
    if as_json and result.done is not None:
        out.print(
            JSONHighlighter()(json_text({**result.to_dict(), "engine": backend.engine, "device": backend.device})),
            soft_wrap=True,
        )
    elif printer is not None:
        printer.end()
    raise typer.Exit(outcome(result, interrupted, max_tokens))
