"""pull, list, rm and models: the models on this disk and the ones the catalog offers."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from .. import catalog, choice, fit, fit_npu, presets, resolve, store
from ..errors import UsageError
from ..names import ModelAddress
from .app import alias, command, err, out
from .resident import find_server, is_loaded_as

NAME_ARG = typer.Argument(..., help="r1, r1:7b, r1:7b-q8_0, hf.co/USER/REPO:QUANT or USER/REPO/FILE.gguf.")
REVISION_OPT = typer.Option(None, "--revision", help="Branch, tag or commit of the Hub repository.")
JSON_OPT = typer.Option(False, "--json", help="Print JSON instead of a table.")


class DownloadBar:
    """A tqdm-like progress bar (what huggingface_hub's http_get drives), drawn by rich on stderr:
    bytes, speed and time left."""

    def __init__(self, *, total: int | None = None, initial: int = 0, desc: str = "", **_) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err,
        )
        self._task = self._progress.add_task(desc, total=total, completed=initial)
        self._progress.start()

    def update(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def close(self) -> None:
        self._progress.stop()

    def __enter__(self) -> DownloadBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def say(line: str) -> None:
    """A line about what a command does on the way (which file a name picked, whom it contacts)."""
    err.print(line, style="dim", markup=False)


def ask(question: str) -> bool:
    """Ask before a download on a terminal; without one, refuse and say how to go on."""
    if not sys.stdin.isatty():
        raise UsageError(
            question.split(". ")[0] + ", and there is no terminal to ask before downloading it.",
            "Pass --yes to download without asking, or run r1local pull first.",
        )
    return typer.confirm(question, default=True, err=True)


def resolve_model(address: ModelAddress, *, yes: bool = False, revision: str | None = None) -> Path:
    """The GGUF file for a name given on the command line (catalog name, Hub reference or path);
    a missing model is downloaded, after a question on a terminal unless `yes`."""
    return resolve.resolve(
        address, pull_if_missing=True, confirm=None if yes else ask, revision=revision, progress=DownloadBar, notify=say
    )


@command()
def pull(name: str = NAME_ARG, revision: str | None = REVISION_OPT) -> None:
    """Download a model into the Hugging Face cache (resumable, verified) and print its path.

    Example: r1local pull r1:7b
    """
    target, label = resolve.choose(ModelAddress.parse(name), revision=revision, notify=say)
    if store.discard_damaged(target):
        err.print(f"The copy of {label} in the cache is cut short: downloading it again.", style="yellow")
    path = store.find_local(target)
    if path is not None:
        err.print(f"{label} is already downloaded.", style="dim")
    else:
        from .. import download  # the Hub client only when something is downloaded

        err.print(f"Pulling {label} from {target.repo}", style="bold")
        path = download.pull(target, progress=DownloadBar, on_wait=_say_waiting, notify=say)
    out.print(str(path))


def _say_waiting(file: str, first: bool) -> None:
    if first:
        err.print(f"Waiting for another pull of {file} to finish...", style="dim")


@command(name="list")
def list_models(as_json: bool = JSON_OPT) -> None:
    """The models downloaded to this disk (alias: ls).

    Example: r1local list --json
    """
    models, kept = store.installed(), presets.all_presets()
    if as_json:
        out.print_json(json.dumps([_local_json(m) for m in models] + [asdict(p) for p in kept]))
        return
    if kept:
        out.print("  ".join(("PRESET".ljust(max(len(p.name) for p in kept)), "FROM")), style="bold")
        for p in kept:
            out.print(f"{p.name.ljust(max(len(q.name) for q in kept))}  {p.base}")
    if not models:
        err.print("No models downloaded yet. Get one with: r1local pull r1")
        return
    # the paths are long (Hugging Face cache layout): each goes on its own line under its model
    rows = [
        (
            m.name,
            m.quant or "?",
            store.human_size(m.size) + ("" if m.complete else " (damaged or cut short: pull it again)"),
            _ago(m.last_used),
        )
        for m in models
    ]
    widths = [max(len(r[i]) for r in [*rows, ("NAME", "QUANT", "SIZE", "LAST USED")]) for i in range(4)]
    out.print(
        "  ".join(h.ljust(w) for h, w in zip(("NAME", "QUANT", "SIZE", "LAST USED"), widths, strict=True)), style="bold"
    )
    for row, m in zip(rows, models, strict=True):
        out.print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        out.print(f"  {m.path}", style="dim")


alias("ls", list_models, help="Same as list.")


def _local_json(m: store.LocalModel) -> dict:
    return {
        "name": m.name,
        "repo": m.repo,
        "files": m.files,
        "quant": m.quant,
        "size": m.size,
        "path": str(m.path),
        "commit": m.commit,
        "refs": m.refs,
        "last_used": m.last_used,
        "complete": m.complete,
    }


def _ago(when: float | None) -> str:
    if when is None:
        return "never"
    seconds = time.time() - when
    for unit, span in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= span:
            count = int(seconds // span)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"


@command()
def rm(
    name: str = NAME_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove several models without asking."),
) -> None:
    """Delete a downloaded model and free its disk space.

    Example: r1local rm r1:7b-q8_0 (r1:7b asks before removing every 7B quantisation)
    """
    if presets.remove(name):  # a preset goes alone; its base model stays
        out.print(f"Removed preset {presets.canonical(name)}")
        return
    matches = resolve.installed_matches(ModelAddress.parse(name, allow_paths=True))
    if not matches:
        raise UsageError(f"{name} is not downloaded, so there is nothing to remove.", "See r1local list.")
    if len(matches) > 1 and not yes:
        listing = ", ".join(f"{m.name} ({store.human_size(m.size)})" for m in matches)
        if sys.stdin is None or not sys.stdin.isatty():
            raise UsageError(
                f"{name} matches {len(matches)} downloaded models: {listing}.",
                "Name one of them, or pass --yes to remove them all.",
            )
        if not typer.confirm(f"Remove {len(matches)} models: {listing}?", default=False, err=True):
            err.print("Nothing removed.")
            return
    _unload_first(matches)
    for m in matches:
        freed = store.remove(m)
        out.print(f"Removed {m.name} ({store.human_size(freed)} freed)")


def _unload_first(matches: list[store.LocalModel]) -> None:
    """A model the running server holds leaves memory before its file goes, so it never answers from a
    deleted file (nor keeps the disk space in use)."""
    server = find_server().server
    if server is None:
        return
    addresses = [
        address
        for m in matches
        for address in (ModelAddress.parse(m.name), ModelAddress.parse(str(m.path), allow_paths=True))
    ]
    try:
        for loaded in server.running():
            if any(is_loaded_as(address, loaded) for address in addresses):
                server.unload(loaded["name"])
                err.print(
                    f"Unloaded {loaded['name']} from the server at {server.url} first.", style="dim", markup=False
                )
    finally:
        server.close()


@command()
def models(
    show_all: bool = typer.Option(
        False, "--all", "-a", help="Show every quantisation, not only the one each name picks."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """The catalog: for this machine, what each name means, what fits where and how fast it should run.

    Example: r1local models --all
    """
    from ..hardware import detect_live

    hw, cat = detect_live(), catalog.load()
    variants = cat.variants()
    plans = {v.name: fit.plan(v.shape, hw, choice.REASONING_CTX) for v in variants}
    chosen = choice.choose_all(hw, [(v.name, v.shape) for v in variants], fit_npu.npu_plans(hw, cat.npu_variants()))
    best = chosen["r1"]
    picks = _short_name_choices(cat)
    local = {m.name for m in store.installed()}
    rows = [
        {
            "name": v.name,
            "repo": v.repo,
            "files": list(v.files),
            "params_b": v.distill.params_b,
            "quant": v.quant,
            "size": v.size_bytes,
            "verdict": plans[v.name].verdict,
            "decode_tps": None if (tps := plans[v.name].decode_tps) is None else round(tps, 1),
            "n_ctx": plans[v.name].n_ctx,
            "n_gpu_layers": plans[v.name].n_gpu_layers,
            "downloaded": v.name in local,
            "recommended": best is not None and v.name == best.name,
            "chosen_as": [policy for policy, c in chosen.items() if c is not None and c.name == v.name],
            "picked_by": picks.get(v.name, []),
        }
        for v in variants
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    shown = rows if show_all else [r for r in rows if r["picked_by"] or r["chosen_as"]]
    out.print(_models_table(shown, short=not show_all))
    if best is not None:
        err.print(f"`r1` means {best.name} here. Speeds are estimates for this machine.", style="dim")
    if not show_all:
        err.print("Every quantisation: r1local models --all", style="dim")


def _short_name_choices(cat: catalog.Catalog) -> dict[str, list[str]]:
    """Which variant each distill's short name (r1:7b) means on this machine, as `run` resolves it:
    variant name -> the short names that pick it."""
    chosen: dict[str, list[str]] = {}
    for d in cat.distills:
        chosen.setdefault(resolve.plain_size(cat, d).name, []).append(f"r1:{d.name}")
    return chosen


def _models_table(rows: list[dict], short: bool) -> Table:
    """Short names first, full names never cut (other columns wrap first on a narrow terminal)."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    if short:
        table.add_column("NAME", no_wrap=True)
    table.add_column("PICKS" if short else "NAME", no_wrap=True)
    for column in ("SIZE", "ON THIS MACHINE", "SPEED", "CONTEXT", ""):
        table.add_column(column, no_wrap=column in ("SIZE", "SPEED"))
    for r in rows:
        style = "green" if r["verdict"] == "fits on GPU" else "red" if r["verdict"] == "too big" else None
        fits = r["verdict"] != "too big"
        speed = "unknown" if r["decode_tps"] is None else f"~{r['decode_tps']:.0f} tok/s"
        notes = ["downloaded"] if r["downloaded"] else []
        if r["chosen_as"]:
            notes.append("<- " + ", ".join(r["chosen_as"]))
        names = [" ".join(r["picked_by"])] if short else []
        table.add_row(
            *names,
            r["name"],
            store.human_size(r["size"]),
            r["verdict"],
            speed if fits else "-",
            str(r["n_ctx"]) if fits else "-",
            " ".join(notes),
            style=style,
        )
    return table
