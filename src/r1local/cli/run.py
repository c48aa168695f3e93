"""`run`, `chat` and `inspect`: one request, an interactive chat, and a look inside a GGUF."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .. import config
from ..engine.events import ContentDelta, Done, ReasoningDelta, Result
from ..engine import registry
from ..engine.base import Engine
from ..engine.params import R1_TEMPERATURE, R1_TOP_P, SamplingParams
from ..engine.stream import Stream
from ..errors import UsageError
from ..gguf_meta import read_gguf
from ..rpc import load_split, parse_endpoints
from .app import command, err, out
from .models import resolve_model

MODEL_ARG = typer.Argument(..., help="A model: r1, r1:7b, r1:7b-q8_0, hf.co/USER/REPO:QUANT or a .gguf path; "
                                     "add @openvino to run it on OpenVINO.")
YES_OPT = typer.Option(False, "--yes", "-y", help="Download a missing model without asking.")
CTX_OPT = typer.Option(None, "--ctx", min=16, max=1 << 20, help="Context size in tokens (default 8192 or the model's).")
THREADS_OPT = typer.Option(None, "--threads", min=1, max=512, help="CPU threads (default: physical cores).")
GPU_OPT = typer.Option(None, "--gpu-layers", min=-1, max=100_000, help="Layers to offload to the GPU (-1: all).")
TEMPERATURE_OPT = typer.Option(R1_TEMPERATURE, "--temperature", min=0.0, max=5.0)
RPC_OPT = typer.Option(None, "--rpc", help="Spread the model over these `r1local worker`s too: host:port,... "
                                          "(or R1LOCAL_RPC).")
THINK_BUDGET_OPT = typer.Option(None, "--think-budget", min=0, max=2**31 - 1,
                                help="Reasoning tokens before the model must answer (0: no reasoning).")


def open_model(
    model: str, ctx: int | None, threads: int | None, gpu_layers: int | None, yes: bool = False,
    rpc: str | None = None,
) -> Engine:
    name, engine = registry.split_engine(model)
    path = resolve_model(name, yes=yes)
    if endpoints := parse_endpoints(rpc or config.rpc_workers()):
        if registry.engine_for(path, engine) != "llama.cpp":
            raise UsageError("--rpc spreads GGUF models over llama.cpp workers; this model runs on OpenVINO.",
                             "Leave out --rpc (and R1LOCAL_RPC), or choose a GGUF model.")
        return load_split(path, endpoints=endpoints, n_ctx=ctx, n_threads=threads, n_gpu_layers=gpu_layers,
                          progress=lambda line: err.print(line, style="dim", markup=False))
    with ctrl_c_stops_loading() as pressed:
        loaded = registry.load(path, engine=engine, on_compile=_say_compiling, n_ctx=ctx, n_threads=threads,
                               n_gpu_layers=gpu_layers, abort=pressed)
    if loaded.load_note:
        err.print(f"note: {loaded.load_note}", markup=False, style="yellow")
    return loaded


def _say_compiling(plan) -> None:
    err.print(f"Compiling the model for the {plan.device} (first load only; later loads read {plan.cache_dir})...",
              style="dim", markup=False)


@contextmanager
def ctrl_c_stops_loading() -> Iterator[Callable[[], bool]]:
    """While the weights load, Ctrl-C only raises a flag that llama.cpp reads between tensors (a
    KeyboardInterrupt raised inside llama.cpp's log callback would be swallowed by ctypes); the
    load stops, then the interrupt goes on as usual."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed.is_set
        return
    previous = signal.signal(signal.SIGINT, lambda *_: pressed.set())
    try:
        yield pressed.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
        if pressed.is_set():
            raise KeyboardInterrupt


class Printer:
    """Streams the answer to stdout and the reasoning to stderr (dim), so `> file` keeps the answer."""

    def __init__(self, show_reasoning: bool) -> None:
        self.show_reasoning = show_reasoning
        self.in_reasoning = False

    def __call__(self, event) -> None:
        if isinstance(event, ReasoningDelta):
            if self.show_reasoning:
                err.print(event.text, style="dim", end="", markup=False)
                self.in_reasoning = True
        elif isinstance(event, ContentDelta):
            if self.in_reasoning:
                err.print()
                self.in_reasoning = False
            sys.stdout.write(event.text)
            sys.stdout.flush()

    def end(self) -> None:
        if self.in_reasoning:
            err.print()
        sys.stdout.write("\n")
        sys.stdout.flush()


def consume(stream: Stream, on_event=None) -> Result:
    """Gather a stream; Ctrl-C cancels the request and still returns what arrived."""
    result = Result()
    events = iter(stream)
    while True:
        try:
            event = next(events)
        except KeyboardInterrupt:
            stream.cancel()
            continue
        except StopIteration:
            return result
        result.add(event)
        if on_event and not isinstance(event, Done):
            on_event(event)


def sampling(temperature: float, top_p: float, max_tokens: int | None, seed: int | None,
             think_budget: int | None = None) -> SamplingParams:
    return SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                          think_budget=think_budget)


@command()
def run(
    model: str = MODEL_ARG,
    prompt: Optional[str] = typer.Argument(None, help="The prompt (read from stdin when piped)."),
    no_think: bool = typer.Option(False, "--no-think", help="Answer directly, without reasoning."),
    hide_think: bool = typer.Option(False, "--hide-think", help="Do not print the reasoning."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object at the end."),
    temperature: float = TEMPERATURE_OPT,
    top_p: float = typer.Option(R1_TOP_P, "--top-p", min=0.0, max=1.0),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1),
    seed: Optional[int] = typer.Option(None, "--seed"),
    think_budget: Optional[int] = THINK_BUDGET_OPT,
    ctx: Optional[int] = CTX_OPT,
    threads: Optional[int] = THREADS_OPT,
    gpu_layers: Optional[int] = GPU_OPT,
    rpc: Optional[str] = RPC_OPT,
    yes: bool = YES_OPT,
) -> None:
    """Answer one prompt: the answer to stdout, the reasoning to stderr."""
    if prompt is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("No prompt given.", 'Pass it as an argument or pipe it: echo "hi" | r1local run MODEL')
        prompt = sys.stdin.buffer.read().decode("utf-8", "replace")  # bytes that are not UTF-8 become U+FFFD
    if not prompt.strip():
        raise UsageError("The prompt is empty.")
    params = sampling(temperature, top_p, max_tokens, seed, think_budget)
    with open_model(model, ctx, threads, gpu_layers, yes, rpc) as loaded:
        stream = loaded.chat([{"role": "user", "content": prompt}], think=not no_think and think_budget != 0,
                             params=params)
        printer = None if as_json else Printer(show_reasoning=not hide_think)
        result = consume(stream, printer)
    if as_json:
        out.print_json(json.dumps({**result.to_dict(), "engine": loaded.engine, "device": loaded.device}, ensure_ascii=False))
    else:
        printer.end()
    if result.done and result.done.finish_reason == "error":
        err.print(f"error: generation failed: {result.done.error}", style="red", markup=False)
        raise typer.Exit(1)
    if result.done is None or result.done.finish_reason == "cancelled":  # Ctrl-C: what arrived is printed
        raise typer.Exit(130)


CHAT_HELP = "Commands: /reset clears the history, /think on|off, /exit leaves. Ctrl-C stops an answer."


@command()
def chat(
    model: str = MODEL_ARG,
    no_think: bool = typer.Option(False, "--no-think", help="Start with thinking off."),
    hide_think: bool = typer.Option(False, "--hide-think", help="Do not print the reasoning."),
    temperature: float = TEMPERATURE_OPT,
    top_p: float = typer.Option(R1_TOP_P, "--top-p", min=0.0, max=1.0),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1),
    seed: Optional[int] = typer.Option(None, "--seed"),
    think_budget: Optional[int] = THINK_BUDGET_OPT,
    ctx: Optional[int] = CTX_OPT,
    threads: Optional[int] = THREADS_OPT,
    gpu_layers: Optional[int] = GPU_OPT,
    rpc: Optional[str] = RPC_OPT,
    yes: bool = YES_OPT,
) -> None:
    """Chat interactively, keeping the history."""
    params = sampling(temperature, top_p, max_tokens, seed, think_budget)
    think = not no_think and think_budget != 0
    history: list[dict] = []
    with open_model(model, ctx, threads, gpu_layers, yes, rpc) as loaded:
        err.print(f"{loaded.name} ready. {CHAT_HELP}", style="dim", markup=False)
        while True:
            try:
                line = input(">>> ")
            except (EOFError, KeyboardInterrupt):
                err.print()
                return
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                word, _, arg = text.partition(" ")
                if word in ("/exit", "/quit", "/bye"):
                    return
                if word == "/reset":
                    history.clear()
                    err.print("History cleared.", style="dim")
                elif word == "/think" and arg in ("on", "off"):
                    think = arg == "on"
                    err.print(f"Thinking {arg}.", style="dim")
                else:
                    err.print(f"Unknown command {text!r}. {CHAT_HELP}", style="dim", markup=False)
                continue
            history.append({"role": "user", "content": line})
            printer = Printer(show_reasoning=not hide_think)
            result = consume(loaded.chat(history, think=think, params=params), printer)
            printer.end()
            reason = result.done.finish_reason if result.done else "cancelled"
            if reason == "cancelled":
                err.print("(stopped)", style="dim")
            history.append({"role": "assistant", "content": result.content})


@command()
def inspect(
    file: Path = typer.Argument(..., help="A .gguf file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show what a GGUF file holds: architecture, size, quantisation, context, template."""
    info = read_gguf(file)
    facts = {
        "path": str(file.resolve()),
        "name": info.name,
        "architecture": info.architecture,
        "parameters": info.parameter_count,
        "quantization": info.file_type,
        "file_size": info.file_size,
        "context_length": info.context_length,
        "layers": info.block_count,
        "embedding_length": info.embedding_length,
        "heads": info.head_count,
        "kv_heads": info.head_count_kv,
        "tokenizer": info.tokenizer_model,
        "vocab_size": info.vocab_size,
        "chat_template": info.chat_template is not None,
        "tensors": len(info.tensors),
    }
    if as_json:
        out.print_json(json.dumps(facts))
        return
    table = Table(show_header=False, box=None)
    for key, value in facts.items():
        table.add_row(key.replace("_", " "), _human(key, value))
    out.print(table)


def _human(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "file_size":
        return f"{value / 1e6:,.1f} MB"
    if key == "parameters":
        return f"{value / 1e9:.2f} B" if value >= 1e8 else f"{value / 1e6:.2f} M"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:,}" if isinstance(value, int) else str(value)
