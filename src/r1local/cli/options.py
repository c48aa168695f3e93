"""The typer arguments and options several commands share (run, chat, embed, bench, serve, show),
and the small parsers behind them, so each is spelled and validated the same everywhere."""

from __future__ import annotations

from dataclasses import replace

import typer

from .. import config
from ..engine.params import R1_TEMPERATURE, R1_TOP_P, SamplingParams
from ..engine.speculative import DRAFT_P_MIN, Speculation
from ..errors import UsageError
from ..request import ChatRequest, Sampling

MODEL_ARG = typer.Argument(
    ...,
    help="A model: r1, r1:7b, r1:7b-q8_0, deepseek-r1:7b, hf.co/USER/REPO:QUANT or a "
    ".gguf path; add @openvino to run it on OpenVINO.",
)
YES_OPT = typer.Option(False, "--yes", "-y", help="Download a missing model without asking.")
CTX_OPT = typer.Option(None, "--ctx", min=16, max=1 << 20, help="Context size in tokens (default 8192 or the model's).")
THREADS_OPT = typer.Option(None, "--threads", min=1, max=512, help="CPU threads (default: physical cores).")
GPU_OPT = typer.Option(None, "--gpu-layers", min=-1, max=100_000, help="Layers to offload to the GPU (-1: all).")
RPC_OPT = typer.Option(
    None, "--rpc", help="Spread the model over these `r1local worker`s too: host:port,... (or R1LOCAL_RPC)."
)
MAX_SPLIT_DEVICES = 16  # llama.cpp's LLAMA_MAX_DEVICES: the length of its tensor_split array
SPLIT_OPT = typer.Option(
    None,
    "--tensor-split",
    help="Each device's share of the offloaded layers, in llama.cpp's "
    "order (RPC workers' devices, then this PC's GPUs), e.g. 3,1.",
)


def _check_choice(option: str, value: str | None, choices: tuple[str, ...]) -> str | None:
    if value is not None and value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}.", param_hint=option)
    return value


KV_TYPE_OPT = typer.Option(
    None,
    "--kv-type",
    callback=lambda v: _check_choice("--kv-type", v, config.KV_TYPES),
    help="KV cache type (K and V): q8_0 halves f16's memory with little loss, q4_0 quarters it; a quantised "
    "cache turns flash attention on, the only way llama.cpp reads one (default: f16, or q8_0 where only "
    "it lets the context fit; also kv_type in config.toml).",
)
SPEC_OPT = typer.Option(
    None,
    "--spec",
    callback=lambda v: _check_choice("--spec", v, ("ngram",)),
    help="Speculative decoding from n-gram lookup: guesses the next tokens from the prompt and the text so far "
    "and checks them in one step; pays where the answer repeats its input (code edits, quotes).",
)
DRAFT_OPT = typer.Option(
    None,
    "--draft",
    metavar="MODEL",
    help="Speculative decoding with a draft model: a smaller model of the same vocabulary guesses, the model "
    "checks (a name or .gguf path; auto: R1-Distill-Qwen-1.5B for the Qwen 7B, 14B and 32B distills).",
)
DRAFT_MAX_OPT = typer.Option(16, "--draft-max", min=1, max=256, help="Most tokens one request drafts per step.")
DRAFT_MIN_OPT = typer.Option(2, "--draft-min", min=1, max=256, help="Fewest tokens worth a draft.")
DRAFT_P_MIN_OPT = typer.Option(
    DRAFT_P_MIN,
    "--draft-p-min",
    metavar="P",
    help="A draft model guesses only tokens it gives at least this probability (0: every token).",
)
THINK_BUDGET_OPT = typer.Option(
    None,
    "--think-budget",
    min=0,
    max=2**31 - 1,
    help="Reasoning tokens before the model must answer (0: no reasoning).",
)
LOCAL_OPT = typer.Option(False, "--local", help="Load the model in this process even when r1local serve is running.")
# None: a preset's parameter, else R1's default; a value given on the command line wins over a preset's
TEMPERATURE_OPT = typer.Option(
    None,
    "--temperature",
    min=0.0,
    max=5.0,
    show_default=False,
    help=f"Randomness: 0 always picks the likeliest word; DeepSeek advises 0.5-0.7 for R1 (default: a preset's "
    f"temperature, else {R1_TEMPERATURE}).",
)
TOP_P_OPT = typer.Option(
    None,
    "--top-p",
    min=0.0,
    max=1.0,
    show_default=False,
    help=f"Pick only among the likeliest tokens whose chances add up to this (nucleus sampling; default: a "
    f"preset's top_p, else {R1_TOP_P}).",
)
MAX_TOKENS_OPT = typer.Option(
    None,
    "--max-tokens",
    min=1,
    help="Stop after this many generated tokens, reasoning included (default: until the context is full).",
)
SEED_OPT = typer.Option(None, "--seed", help="Random seed: the same seed and settings give the same answer.")
NO_THINK_OPT = typer.Option(False, "--no-think", help="Answer at once, without reasoning first.")
HIDE_THINK_OPT = typer.Option(False, "--hide-think", help="Print only the answer, not the reasoning.")
RAW_OPT = typer.Option(
    False,
    "--raw",
    help="Write the model's text byte for byte, terminal control sequences "
    "included (for programs that want them; a terminal obeys them).",
)


def parse_split(text: str | None) -> list[float] | None:
    """--tensor-split "3,1" -> [3.0, 1.0]; the fit checks it against the devices."""
    if not text:
        return None
    try:
        shares = [float(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(
            f"--tensor-split {text!r}: give numbers separated by commas.", "Example: --tensor-split 3,1"
        ) from None
    if len(shares) > MAX_SPLIT_DEVICES:
        raise UsageError(
            f"--tensor-split gives {len(shares)} shares; llama.cpp takes at most {MAX_SPLIT_DEVICES} devices."
        )
    return shares


def speculation(
    spec: str | None, draft: str | None, draft_max: int, draft_min: int, p_min: float = DRAFT_P_MIN
) -> Speculation | None:
    """--spec or --draft and the draft bounds as the engine takes them (None: no speculation); the
    draft model's name is resolved to its file when the model it drafts for is known."""
    if spec and draft:
        raise UsageError("--spec ngram and --draft are two sources of drafts: choose one.")
    bounds = Speculation(draft_max=draft_max, draft_min=draft_min, p_min=p_min)  # checked with or without a source
    if draft:
        return replace(bounds, source="draft", draft=draft)
    return replace(bounds, source=spec) if spec else None


def sampling(
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    seed: int | None,
    think_budget: int | None = None,
) -> SamplingParams:
    """The options given; those not given stay unset (model_fields_set), so a preset's parameters fill them."""
    given = {"temperature": temperature, "top_p": top_p}
    return SamplingParams(
        **{k: v for k, v in given.items() if v is not None}, max_tokens=max_tokens, seed=seed, think_budget=think_budget
    )


def chat_request(messages: list[dict], think: bool | None, params: SamplingParams) -> ChatRequest:
    """The command's options as the one chat request (think None: as the model does by default)."""
    return ChatRequest(
        messages,
        think=think,
        think_budget=params.think_budget,
        max_tokens=params.max_tokens,
        sampling=Sampling(**params.model_dump(include={"temperature", "top_p", "seed"}, exclude_unset=True)),
    )
