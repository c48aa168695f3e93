"""`r1local hw`: what this PC has, what the llama.cpp build can use, and which distill fits best."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from ..fit import Choice, ModelShape, best_model
from ..hardware import Hardware, LiveProbe, RecordingProbe, ReplayProbe, detect
from ..hardware.model import GiB
from .app import command, out

JSON_SCHEMA = 1  # docs/hw-json.md; bump only for incompatible changes


def catalog_candidates() -> tuple[list[tuple[str, ModelShape]], dict[str, str]]:
    """The models `hw` chooses among (every quantisation of every catalog distill), and the file
    name people know each by ("DeepSeek-R1-Distill-Qwen-7B Q4_K_M")."""
    from .. import catalog

    variants = catalog.load().variants()
    return [(v.name, v.shape) for v in variants], {v.name: f"{v.distill.file_prefix} {v.quant}" for v in variants}


def _gb(n: int | None) -> str:
    return "?" if n is None else f"{n / GiB:.1f} GB"


def _ctx(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def recommendation_line(choice: Choice | None, hw: Hardware, display: str | None = None) -> str:
    if choice is None:
        return (f"Nothing in the catalog fits: {_gb(hw.memory.available)} of RAM free"
                + (f" and {_gb(sum(g.vram_free or 0 for g in hw.usable_gpus))} of GPU memory." if hw.usable_gpus else "."))
    p = choice.plan
    if p.verdict == "fits on GPU":
        where = f"all layers on the {p.device} ({p.gpu_bytes / GiB:.1f} of {_gpu_total(hw) / GiB:.0f} GB)"
    elif p.verdict == "partly on GPU":
        where = (f"{p.n_gpu_layers} of {choice.shape.layers} layers on the {p.device.removesuffix(' + CPU')}"
                 f" ({p.gpu_bytes / GiB:.1f} GB), the rest on the CPU")
    else:
        where = f"on the CPU ({p.n_threads} threads, {p.cpu_bytes / GiB:.1f} of {hw.memory.usable_total / GiB:.0f} GB RAM)"
    return (f"Best for this PC: {display or choice.shape.name}, {where}, {_ctx(p.n_ctx)} context, "
            f"about {p.decode_tps:.0f} tokens/s (estimate)  ->  r1local pull {choice.name}")


def _gpu_total(hw: Hardware) -> int:
    return sum(g.vram_total or 0 for g in hw.usable_gpus)


def _print_report(hw: Hardware, choice: Choice | None, display: str | None) -> None:
    system = Table(title="System", show_header=False, title_justify="left")
    system.add_row("OS", f"{hw.system} {hw.release}".strip())
    system.add_row("CPU", f"{hw.cpu.model} ({hw.cpu.arch})")
    cores = f"{hw.cpu.physical_cores} physical, {hw.cpu.logical_cores} logical"
    if hw.cpu.performance_cores:
        cores += f", {hw.cpu.performance_cores} performance"
    system.add_row("Cores", f"{cores}; llama.cpp threads: {hw.cpu.threads}")
    system.add_row("CPU features", " ".join(hw.cpu.features) or "none that llama.cpp accelerates")
    ram = f"{_gb(hw.memory.total)} total, {_gb(hw.memory.available)} available"
    if hw.memory.cgroup_limit:
        ram += f"; container limit {_gb(hw.memory.cgroup_limit)}"
    system.add_row("Memory", ram)
    system.add_row("RAM bandwidth", f"about {hw.cpu_bandwidth_gbs:.0f} GB/s usable by {hw.cpu.threads} threads (estimate)")
    out.print(system)

    gpu_verdicts = [v for v in hw.verdicts if v.kind == "gpu"]
    npu_verdicts = [v for v in hw.verdicts if v.kind == "npu"]
    if hw.gpus:
        t = Table(title="GPUs", title_justify="left")
        for col in ("GPU", "Kind", "Memory (free/total)", "Driver / arch", "llama.cpp"):
            t.add_column(col)
        for g, v in zip(hw.gpus, gpu_verdicts):
            kind = "integrated (shares RAM)" if g.integrated else "discrete"
            mem = f"{_gb(g.vram_free) if g.vram_free is not None else '?'} / {_gb(g.vram_total)}"
            cc = g.compute_capability and (f"cc {g.compute_capability}" if g.vendor == "nvidia" else g.compute_capability)
            arch = " ".join(x for x in (g.driver, cc) if x)
            t.add_row(g.name, kind, mem, arch or "-", v.status)
        out.print(t)
    else:
        out.print("GPUs: none found")
    if hw.npus:
        t = Table(title="NPUs", title_justify="left")
        for col in ("NPU", "Generation", "Driver", "llama.cpp"):
            t.add_column(col)
        for n, v in zip(hw.npus, npu_verdicts):
            t.add_row(n.name, n.generation or "-", n.driver or n.source, v.status)
        out.print(t)

    b = hw.build
    t = Table(title="llama.cpp build", show_header=False, title_justify="left")
    if b is None:
        t.add_row("llama-cpp-python", "not installed (pip install llama-cpp-python)")
    else:
        t.add_row("llama-cpp-python", b.version or "?")
        t.add_row("Backends", ", ".join(b.backends) or "CPU")
        t.add_row("GPU offload", "yes" if b.gpu_offload else "no (CPU-only build)")
        cpu_feats = [k for k, v in b.backends.get("CPU", {}).items() if v == "1"]
        t.add_row("Compiled CPU features", " ".join(cpu_feats) or "-")
        for d in b.devices:
            mem = f", {_gb(d.memory_free)} free of {_gb(d.memory_total)}" if d.memory_total else ""
            t.add_row(f"Device {d.name}", f"{d.description} ({d.type}{mem})")
    out.print(t)

    if hw.verdicts:
        out.print("[bold]Accelerators[/]")
        for v in hw.verdicts:
            mark = "[green]used[/]" if v.usable else "[yellow]not used[/]"
            out.print(f"  {mark} {v.device}: {v.status} - {v.why}")
            if v.next_step:
                out.print(f"      next: {v.next_step}", markup=False, style="dim")
    out.print()
    out.print(recommendation_line(choice, hw, display), style="bold", markup=False)
    if choice:
        p = choice.plan
        out.print(f"  prompt reading about {p.prompt_tps:.0f} tokens/s; {p.reason} (estimates)", style="dim")


def report_json(hw: Hardware, choice: Choice | None, display: str | None) -> dict:
    return {
        "schema_version": JSON_SCHEMA,
        **hw.to_dict(),
        "recommendation": None if choice is None else {
            "model": choice.name, "display_name": display, "quant": choice.shape.quant,
            "line": recommendation_line(choice, hw, display), "plan": choice.plan.to_dict(),
        },
    }


@command()
def hw(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (schema: docs/hw-json.md)."),
    snapshot: Path | None = typer.Option(None, "--snapshot", help="Replay detection from a saved snapshot."),
    save_snapshot: Path | None = typer.Option(None, "--save-snapshot", help="Save every raw input detection read."),
) -> None:
    """Show CPU, memory, GPUs, NPUs and what llama.cpp can use here, and which R1 distill fits best."""
    probe = ReplayProbe.load(snapshot) if snapshot else LiveProbe()
    recorder = RecordingProbe(probe) if save_snapshot else None
    hardware = detect(recorder or probe)
    if recorder:
        recorder.save(save_snapshot)
    candidates, names = catalog_candidates()
    choice = best_model(hardware, candidates)
    display = names.get(choice.name) if choice else None
    if as_json:
        out.print_json(json.dumps(report_json(hardware, choice, display)))
    else:
        _print_report(hardware, choice, display)
        if save_snapshot:
            out.print(f"Snapshot saved to {save_snapshot}", style="dim")
