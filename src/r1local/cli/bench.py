"""`bench`: prefill and decode speed, time to first token and peak memory of one model."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from .. import presets
from ..errors import UsageError
from ..names import ModelAddress
from ..units import human_size, plural
from .app import command, err, out
from .backend import open_model
from .options import (
    DRAFT_MAX_OPT,
    DRAFT_MIN_OPT,
    DRAFT_OPT,
    DRAFT_P_MIN_OPT,
    GPU_OPT,
    KV_TYPE_OPT,
    MODEL_ARG,
    RPC_OPT,
    SPEC_OPT,
    SPLIT_OPT,
    THREADS_OPT,
    speculation,
)

if TYPE_CHECKING:
    from ..bench import BenchReport, Spread


@command()
def bench(
    model: str = MODEL_ARG,
    pp: int = typer.Option(512, "--pp", min=1, help="Prompt tokens to process per prefill test."),
    tg: int = typer.Option(128, "--tg", min=1, help="Tokens to generate per decode test."),
    repetitions: int = typer.Option(5, "--repetitions", "-r", min=1, help="Runs of each test."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with every run."),
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
) -> None:
    """Measure prefill (ppN) and decode (tgN) tokens/s, time to first token and peak RSS,
    the way llama.cpp's llama-bench does.

    Example: r1local bench r1:7b -r 5
    """
    from ..bench import context_for, run_bench  # the engine loads only for this command
    from ..engine.model import Model
    from ..rpc.engine import SplitModel

    if repetitions < 2 and not as_json:
        err.print("One repetition gives no spread; use -r 3 or more for figures you can trust.", style="dim")
    drafts = speculation(spec, draft, draft_max, draft_min, draft_p_min)
    if preset := presets.find(model):  # its base model, with its draft and KV type where none are given
        model, kv_type, drafts = preset.base, kv_type or preset.kv_type, drafts or preset.speculation()
    address = ModelAddress.parse(model, allow_paths=True)
    if address.engine not in (None, "llama.cpp"):  # refused before a load (OpenVINO converts the GGUF first)
        _refuse_engine(model, address.engine)
    with open_model(
        address,
        context_for(pp, tg),
        threads,
        gpu_layers,
        rpc=rpc,
        tensor_split=tensor_split,
        kv_type=kv_type,
        spec=drafts,
    ) as loaded:
        if not isinstance(loaded, (Model, SplitModel)):  # a folder or a name whose engine only its file tells
            _refuse_engine(model, loaded.engine)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            transient=True,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def step(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=total)
                bar.update(tasks[name], completed=done)

            report = run_bench(loaded, pp=pp, tg=tg, repetitions=repetitions, progress=step)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        out.print(_table(report))


def _refuse_engine(model: str, engine: str) -> NoReturn:
    raise UsageError(
        f"bench measures llama.cpp; {model} runs on {engine}.", "Bench the GGUF file on llama.cpp: leave out @openvino."
    )


def _table(r: BenchReport) -> Table:
    table = Table(
        title=f"{r.model} · {r.file_type} · {human_size(r.size_bytes)} · "
        f"{plural(r.threads, 'thread')} · {plural(r.repetitions, 'run')} each"
    )
    table.add_column("test")
    table.add_column("median", justify="right")
    table.add_column("± stdev", justify="right")
    table.add_column("min … max", justify="right")

    def row(name: str, s: Spread, fmt: str, unit: str) -> None:
        table.add_row(name, f"{s.median:{fmt}} {unit}", f"{s.stdev:{fmt}}", f"{s.min:{fmt}} … {s.max:{fmt}}")

    row(f"pp{r.pp_tokens}", r.pp_tokens_per_s, ".1f", "tok/s")
    row(f"tg{r.tg_tokens}", r.tg_tokens_per_s, ".1f", "tok/s")
    row(f"time to first token (pp{r.pp_tokens})", r.ttft_s, ".3f", "s")
    if r.acceptance is not None:
        table.add_row(
            f"drafts kept (tg{r.tg_tokens})",
            f"{r.acceptance:.0%}",
            "",
            f"{r.draft_accepted} of {r.draft_tokens} tokens",
        )
    table.add_row("peak RSS", f"{r.peak_rss_bytes / 2**20:.0f} MiB", "", "")
    return table
