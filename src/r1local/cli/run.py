"""`run`: one prompt, one answer; and the options and printing `chat` and `bench` share."""

from __future__ import annotations

import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import typer
from rich.highlighter import JSONHighlighter

from .. import catalog, config
from ..client import RemoteStream
from ..engine import registry
from ..engine.base import Engine
from ..engine.events import Done, Result
from ..engine.params import R1_TEMPERATURE, R1_TOP_P, SamplingParams
from ..errors import INTERRUPTED_EXIT, MAX_TOKENS_EXIT, ModelNotFound, UsageError
from ..request import ChatRequest, Sampling, submit
from .app import command, err, out
from .models import resolve_model
from .printer import Printer
from .terminal import json_text
from .resident import announce, find_server

if TYPE_CHECKING:
    from ..engine.stream import Stream

MODEL_ARG = typer.Argument(..., help="A model: r1, r1:7b, r1:7b-q8_0, hf.co/USER/REPO:QUANT or a .gguf path; "
                                     "add @openvino to run it on OpenVINO.")
YES_OPT = typer.Option(False, "--yes", "-y", help="Download a missing model without asking.")
CTX_OPT = typer.Option(None, "--ctx", min=16, max=1 << 20, help="Context size in tokens (default 8192 or the model's).")
THREADS_OPT = typer.Option(None, "--threads", min=1, max=512, help="CPU threads (default: physical cores).")
GPU_OPT = typer.Option(None, "--gpu-layers", min=-1, max=100_000, help="Layers to offload to the GPU (-1: all).")
RPC_OPT = typer.Option(None, "--rpc", help="Spread the model over these `r1local worker`s too: host:port,... "
                                          "(or R1LOCAL_RPC).")
MAX_SPLIT_DEVICES = 16  # llama.cpp's LLAMA_MAX_DEVICES: the length of its tensor_split array
SPLIT_OPT = typer.Option(None, "--tensor-split", help="Each device's share of the offloaded layers, in llama.cpp's "
                                                      "order (RPC workers' devices, then this PC's GPUs), e.g. 3,1.")


def _check_kv_type(value: str | None) -> str | None:
    if value is not None and value not in config.KV_TYPES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(config.KV_TYPES)}.")
    return value


KV_TYPE_OPT = typer.Option(
    None, "--kv-type", callback=_check_kv_type,
    help="KV cache type (K and V): q8_0 halves f16's memory with little loss, q4_0 quarters it; a quantised "
         "cache turns flash attention on, the only way llama.cpp reads one (default: f16, or q8_0 where only "
         "it lets the context fit; also kv_type in config.toml).")
THINK_BUDGET_OPT = typer.Option(None, "--think-budget", min=0, max=2**31 - 1,
                                help="Reasoning tokens before the model must answer (0: no reasoning).")
LOCAL_OPT = typer.Option(False, "--local", help="Load the model in this process even when r1local serve is running.")
TEMPERATURE_OPT = typer.Option(
    R1_TEMPERATURE, "--temperature", min=0.0, max=5.0,
    help="Randomness: 0 always picks the likeliest word; DeepSeek advises 0.5-0.7 for R1.")
TOP_P_OPT = typer.Option(
    R1_TOP_P, "--top-p", min=0.0, max=1.0,
    help="Pick only among the likeliest tokens whose chances add up to this (nucleus sampling).")
MAX_TOKENS_OPT = typer.Option(
    None, "--max-tokens", min=1,
    help="Stop after this many generated tokens, reasoning included (default: until the context is full).")
SEED_OPT = typer.Option(None, "--seed", help="Random seed: the same seed and settings give the same answer.")
NO_THINK_OPT = typer.Option(False, "--no-think", help="Answer at once, without reasoning first.")
HIDE_THINK_OPT = typer.Option(False, "--hide-think", help="Print only the answer, not the reasoning.")
RAW_OPT = typer.Option(False, "--raw", help="Write the model's text byte for byte, terminal control sequences "
                                          "included (for programs that want them; a terminal obeys them).")

EXIT_CODES = (
    "Exit codes: 0 answered; 1 generation failed; 2 bad usage; 3 model not found; 4 model file unusable; "
    "5 prompt longer than the context; 6 server busy; 7 not enough memory; 8 download failed; "
    "9 offline and not downloaded; 10 an RPC worker unusable or lost; 11 the RPC build failed; "
    "20 stopped at --max-tokens or a full context; 130 interrupted (Ctrl-C)."
)


@contextmanager
def spinner(text: str) -> Iterator[None]:
    """A spinner on stderr while something slow runs, on a terminal only (never in a pipe or a log)."""
    if err.is_terminal:
        with err.status(text, spinner="dots"):
            yield
    else:
        yield


def parse_split(text: str | None) -> list[float] | None:
    """--tensor-split "3,1" -> [3.0, 1.0]; the fit checks it against the devices."""
    if not text:
        return None
    try:
        shares = [float(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"--tensor-split {text!r}: give numbers separated by commas.",
                         "Example: --tensor-split 3,1") from None
    if len(shares) > MAX_SPLIT_DEVICES:
        raise UsageError(f"--tensor-split gives {len(shares)} shares; llama.cpp takes at most "
                         f"{MAX_SPLIT_DEVICES} devices.")
    return shares


def open_model(
    model: str, ctx: int | None, threads: int | None, gpu_layers: int | None, yes: bool = False,
    rpc: str | None = None, tensor_split: str | None = None, kv_type: str | None = None,
) -> Engine:
    from ..rpc import load_split, parse_endpoints  # the RPC client only where a load may use it

    name, engine = registry.split_engine(model)
    split = parse_split(tensor_split)
    path = resolve_model(name, yes=yes)
    with spinner(f"Loading {model}..."):
        if endpoints := parse_endpoints(rpc or config.rpc_workers()):
            if registry.engine_for(path, engine) != "llama.cpp":
                raise UsageError("--rpc spreads GGUF models over llama.cpp workers; this model runs on OpenVINO.",
                                 "Leave out --rpc (and R1LOCAL_RPC), or choose a GGUF model.")
            with ctrl_c_stops_loading() as pressed:
                return load_split(path, endpoints=endpoints, n_ctx=ctx, n_threads=threads, n_gpu_layers=gpu_layers,
                                  tensor_split=split, kv_type=kv_type, abort=pressed,
                                  progress=lambda line: err.print(line, style="dim", markup=False))
        with ctrl_c_stops_loading() as pressed:
            loaded = registry.load(path, engine=engine, on_compile=_say_compiling, n_ctx=ctx, n_threads=threads,
                                   n_gpu_layers=gpu_layers, tensor_split=split, kv_type=kv_type, abort=pressed)
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


@dataclass
class Backend:
    """Where a command's requests go: a resident server that has the model, or the model loaded here."""

    where: str  # "http://127.0.0.1:11435" or "this process"
    engine: str  # "llama.cpp", "openvino"; "r1local serve" when a server answers
    device: str  # where the model runs, as the engine names it; the server's URL when a server answers
    chat: Callable[[ChatRequest], Stream | RemoteStream]  # a request -> a stream of its events


def _is_file(model: str) -> bool:
    try:
        return catalog.parse(registry.split_engine(model)[0], allow_paths=True).path is not None
    except ModelNotFound:  # perhaps a name only the server knows (a file it was started with)
        return False


@contextmanager
def open_backend(model: str, ctx: int | None, threads: int | None, gpu_layers: int | None, yes: bool,
                 local: bool, rpc: str | None = None, tensor_split: str | None = None,
                 kv_type: str | None = None) -> Iterator[Backend]:
    """A running `r1local serve` answers when it can load the model (already loaded: at once), as
    Ollama does; load options, RPC workers, a file path or --local load the model in this process."""
    loads_here = (local or any(x is not None for x in (ctx, threads, gpu_layers, tensor_split, kv_type))
                  or bool(rpc or config.rpc_workers())
                  or _is_file(model))
    found = None if loads_here else find_server()
    server = found.server if found else None
    if server is not None and server.has(model):
        announce(found)
        try:
            yield Backend(server.url, "r1local serve", server.url, functools.partial(server.chat, model))
        finally:
            server.close()
        return
    if server is not None:
        server.close()
    with open_model(model, ctx, threads, gpu_layers, yes, rpc, tensor_split, kv_type) as loaded:
        yield Backend("this process", loaded.engine, loaded.device, lambda chat: submit(chat, loaded))


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
            err.print(f"The context filled up after {used} tokens, before the answer ended. "
                      "Start with a larger --ctx.", style="yellow", markup=False)
        elif not result.content.strip():
            err.print(f"The reasoning used all {used} tokens of --max-tokens before an answer began. "
                      "Raise --max-tokens (or leave it out), or pass --no-think.", style="yellow", markup=False)
        else:
            err.print(f"The answer was cut at --max-tokens {max_tokens}. Raise it for the rest.",
                      style="yellow", markup=False)
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


def sampling(temperature: float, top_p: float, max_tokens: int | None, seed: int | None,
             think_budget: int | None = None) -> SamplingParams:
    return SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                          think_budget=think_budget)


def chat_request(messages: list[dict], think: bool | None, params: SamplingParams) -> ChatRequest:
    """The command's options as the one chat request (think None: as the model does by default)."""
    return ChatRequest(messages, think=think, think_budget=params.think_budget, max_tokens=params.max_tokens,
                       sampling=Sampling(temperature=params.temperature, top_p=params.top_p, seed=params.seed))


@command(epilog=EXIT_CODES)
def run(
    model: str = MODEL_ARG,
    prompt: Optional[str] = typer.Argument(
        None, help="The prompt. Piped stdin is read too and added after it, as a document to work on."),
    no_think: bool = NO_THINK_OPT,
    hide_think: bool = HIDE_THINK_OPT,
    raw: bool = RAW_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object at the end."),
    temperature: float = TEMPERATURE_OPT,
    top_p: float = TOP_P_OPT,
    max_tokens: Optional[int] = MAX_TOKENS_OPT,
    seed: Optional[int] = SEED_OPT,
    think_budget: Optional[int] = THINK_BUDGET_OPT,
    ctx: Optional[int] = CTX_OPT,
    threads: Optional[int] = THREADS_OPT,
    gpu_layers: Optional[int] = GPU_OPT,
    tensor_split: Optional[str] = SPLIT_OPT,
    rpc: Optional[str] = RPC_OPT,
    kv_type: Optional[str] = KV_TYPE_OPT,
    yes: bool = YES_OPT,
    local: bool = LOCAL_OPT,
) -> None:
    """Answer one prompt: the answer to stdout, the reasoning to stderr. A running r1local serve
    answers when it has the model (no loading wait); otherwise the model loads here.

    Example: git diff | r1local run r1 "Review this change" > review.md
    """
    prompt = read_prompt(prompt)
    params = sampling(temperature, top_p, max_tokens, seed, think_budget)
    with open_backend(model, ctx, threads, gpu_layers, yes, local, rpc, tensor_split, kv_type) as backend:
        stream = backend.chat(chat_request([{"role": "user", "content": prompt}], False if no_think else None, params))
        printer = None if as_json else Printer(show_reasoning=not hide_think, raw=raw)
        result, interrupted = consume(stream, printer)
    if as_json and result.done is not None:
        out.print(JSONHighlighter()(json_text({**result.to_dict(), "engine": backend.engine,
                                               "device": backend.device})), soft_wrap=True)
    elif printer is not None:
        printer.end()
    raise typer.Exit(outcome(result, interrupted, max_tokens))
