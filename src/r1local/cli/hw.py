"""`r1local hw`: what this PC has, what the llama.cpp build can use, and which distill fits best."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from .. import fit_npu
from ..choice import FAST_MIN_PARAMS, NPU_VERDICT, Choice, choose_all, seconds_per_1000
from ..fit import ModelShape
from ..hardware import Hardware, LiveProbe, RecordingProbe, ReplayProbe, detect
from ..hardware.model import GiB
from ..rpc import parse_endpoints
from ..units import plural
from .app import command, out
from .hw_draft import draft_line, draft_report
from .hw_rpc import print_rpc_report, rpc_report

JSON_SCHEMA = 1  # docs/hw-json.md; bump only for incompatible changes
NPU_SAVES = "; on the NPU: the CPU and GPU stay free, at a fraction of their power"


def catalog_candidates() -> tuple[list[tuple[str, ModelShape]], dict[str, str]]:
    """The models `hw` chooses among (every quantisation of every catalog distill), and the file
    name people know each by ("DeepSeek-R1-Distill-Qwen-7B Q4_K_M")."""
    from .. import catalog

    variants = catalog.load().variants()
    return [(v.name, v.shape) for v in variants], {v.name: f"{v.distill.file_prefix} {v.quant}" for v in variants}


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / GiB:.1f} GiB"


def _tps(tps: float | None) -> str:
    return "unknown speed (memory bandwidth unknown)" if tps is None else f"about {tps:.0f} tokens/s (estimate)"


def _per_1000(c: Choice) -> str:
    s = seconds_per_1000(c.plan)
    return "time unknown" if s is None else f"~{s:.0f} s per 1,000 tokens"


def recommend(hw: Hardware) -> tuple[dict[str, Choice | None], str | None]:
    """Every policy's choice and the display name of r1's: on an Intel NPU, the NPU's folders
    compete with the GGUF files (see fit_npu)."""
    from .. import catalog

    candidates, names = catalog_candidates()
    npu_variants = catalog.load().npu_variants()
    names |= {v.name: f"{v.distill.file_prefix} OpenVINO INT4 for the NPU" for v in npu_variants}
    chosen = choose_all(hw, candidates, fit_npu.npu_plans(hw, npu_variants))
    return chosen, names.get(chosen["r1"].name) if chosen["r1"] else None


def _ctx(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def recommendation_line(choice: Choice | None, hw: Hardware, display: str | None = None) -> str:
    if choice is not None and choice.plan.verdict == NPU_VERDICT:
        return fit_npu.npu_line(choice, display or choice.name)
    if choice is None:
        return f"Nothing in the catalog fits: {_gib(hw.memory.available)} of RAM available" + (
            f" and {_gib(sum(g.vram_free or 0 for g in hw.usable_gpus))} of GPU memory free." if hw.usable_gpus else "."
        )
    p = choice.plan
    if p.verdict == "fits on GPU":
        where = f"all layers on the {p.device} (needs {_gib(p.gpu_bytes)} of its {_gib(_gpu_total(hw))})"
    elif p.verdict == "partly on GPU":
        where = (
            f"{p.n_gpu_layers} of {choice.shape.layers} layers on the {p.device.removesuffix(' + CPU')}"
            f" (needs {_gib(p.gpu_bytes)} of GPU memory), the rest on the CPU"
        )
    else:
        where = (
            f"on the CPU ({plural(p.n_threads, 'thread')}; needs {_gib(p.cpu_bytes)}"
            f" of {_gib(hw.memory.available)} available RAM)"
        )
    kv = f" ({p.kv_type} KV cache)" if p.kv_type != "f16" else ""
    return (
        f"Best for this PC: {display or choice.shape.name}, {where}, {_ctx(p.n_ctx)} context{kv}, "
        f"{_tps(p.decode_tps)}  ->  r1local pull {choice.name}"
    )


def _note(policy: str, c: Choice) -> str:
    """What an alternative's time alone does not say: what the NPU saves, why r1:fast is no 7B."""
    if policy == "r1:npu":
        return NPU_SAVES
    return f"; {c.why}" if policy == "r1:fast" and c.shape.params < FAST_MIN_PARAMS else ""


def why_line(chosen: dict[str, Choice | None]) -> str:
    """Why `r1` is what it is, and what r1:best and r1:fast would cost in answer time."""
    r1 = chosen["r1"]
    if r1 is None:
        return ""
    others = [
        f"{policy} = {c.name} ({_per_1000(c)}{_note(policy, c)})"
        for policy, c in chosen.items()
        if policy != "r1" and c is not None and not (policy == "r1:npu" and c.name == r1.name)
    ]
    return f"Why: r1 is {r1.why} ({_per_1000(r1)} of thinking). " + "; ".join(others) + "."


def _bandwidth(hw: Hardware) -> str:
    if hw.cpu_bandwidth_gbs is None:
        return "unknown (not measured, and the CPU is not in the table): speeds cannot be estimated"
    if hw.bandwidth_source == "measured":
        return f"{hw.cpu_bandwidth_gbs:.0f} GB/s measured with {plural(hw.cpu.threads, 'thread')} (copy probe)"
    return (
        f"about {hw.cpu_bandwidth_gbs:.0f} GB/s usable by {plural(hw.cpu.threads, 'thread')}"
        f" (published: {hw.memory_kind})"
    )


def _gpu_total(hw: Hardware) -> int:
    return sum(g.vram_total or 0 for g in hw.usable_gpus)


def _print_report(hw: Hardware, chosen: dict[str, Choice | None], display: str | None) -> None:
    system = Table(title="System", show_header=False, title_justify="left")
    system.add_row("OS", f"{hw.system} {hw.release}".strip())
    system.add_row("CPU", f"{hw.cpu.model} ({hw.cpu.arch})")
    cores = f"{hw.cpu.physical_cores} physical, {hw.cpu.logical_cores} logical"
    if hw.cpu.performance_cores:
        cores += f", {hw.cpu.performance_cores} performance"
    system.add_row("Cores", f"{cores}; llama.cpp threads: {hw.cpu.threads}")
    system.add_row("CPU features", " ".join(hw.cpu.features) or "none that llama.cpp accelerates")
    ram = f"{_gib(hw.memory.total)} installed, {_gib(hw.memory.available)} available now"
    if hw.memory.cgroup_limit:
        ram += f"; container limit {_gib(hw.memory.cgroup_limit)}"
    system.add_row("Memory", ram)
    system.add_row("RAM bandwidth", _bandwidth(hw))
    out.print(system)

    gpu_verdicts = [v for v in hw.verdicts if v.kind == "gpu"]
    npu_verdicts = [v for v in hw.verdicts if v.kind == "npu"]
    if hw.gpus:
        t = Table(title="GPUs", title_justify="left")
        for col in ("GPU", "Kind", "Memory", "Driver / arch", "llama.cpp"):
            t.add_column(col)
        for g, v in zip(hw.gpus, gpu_verdicts, strict=False):
            kind = "integrated (shares RAM)" if g.integrated else "discrete"
            size = f"{_gib(g.vram_total)} {'share of RAM' if g.integrated else 'total'}"
            mem = f"{_gib(g.vram_free)} free of {size}" if g.vram_free is not None else size
            cc = g.compute_capability and (
                f"cc {g.compute_capability}" if g.vendor == "nvidia" else g.compute_capability
            )
            arch = " ".join(x for x in (g.driver, cc) if x)
            t.add_row(g.name, kind, mem, arch or "-", v.status)
        out.print(t)
    else:
        out.print("GPUs: none found")
    if hw.npus:
        t = Table(title="NPUs", title_justify="left")
        for col in ("NPU", "Generation", "Driver", "llama.cpp"):
            t.add_column(col)
        for n, v in zip(hw.npus, npu_verdicts, strict=False):
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
        if note := b.cpu_fallback_note():
            t.add_row("Note", note)
        cpu_feats = [k for k, v in b.backends.get("CPU", {}).items() if v == "1"]
        t.add_row("Compiled CPU features", " ".join(cpu_feats) or "-")
        for d in b.devices:
            mem = f", {_gib(d.memory_free)} free of {_gib(d.memory_total)}" if d.memory_total else ""
            t.add_row(f"Device {d.name}", f"{d.description} ({d.type}{mem})")
    out.print(t)

    if hw.openvino_verdicts:
        version = f" {(hw.openvino.version or '').split('-')[0]}" if hw.openvino else ""
        out.print(f"[bold]OpenVINO engine{version}[/]")
        for v in hw.openvino_verdicts:
            mark = "[green]usable[/]" if v.usable else "[yellow]not usable[/]"
            out.print(f"  {mark} {v.device}: {v.why}")
            if v.next_step:
                out.print(f"      next: {v.next_step}", markup=False, style="dim")
    if hw.verdicts:
        out.print("[bold]Accelerators[/]")
        for v in hw.verdicts:
            mark = "[green]used[/]" if v.usable else "[yellow]not used[/]"
            out.print(f"  {mark} {v.device}: {v.status} - {v.why}")
            if v.next_step:
                out.print(f"      next: {v.next_step}", markup=False, style="dim")
    out.print()
    choice = chosen["r1"]
    # the command on a line of its own, so a narrow terminal never breaks it
    advice, _, pull_command = recommendation_line(choice, hw, display).partition("  ->  ")
    out.print(advice, style="bold", markup=False)
    if pull_command:
        out.print(f"  {pull_command}", style="bold", markup=False)
    if choice:
        p = choice.plan
        prompt = "unknown" if p.prompt_tps is None else f"about {p.prompt_tps:.0f} tokens/s"
        out.print(f"  prompt reading {prompt}; {p.reason} (estimates)", style="dim", markup=False)
        if p.kv_note:
            out.print(
                f"  KV cache: {p.kv_note}, so r1local loads it that way (--kv-type f16 keeps f16)",
                style="dim",
                markup=False,
            )
        if drafting := draft_report(choice, hw):
            out.print(f"  {draft_line(drafting)}", style="dim", markup=False)
        out.print(f"  {why_line(chosen)}", style="dim", markup=False)


def _summary(c: Choice) -> dict:
    return {
        "model": c.name,
        "decode_tps": c.plan.decode_tps,
        "seconds_per_1000_tokens": seconds_per_1000(c.plan),
        "why": c.why,
    }


def report_json(hw: Hardware, chosen: dict[str, Choice | None], display: str | None) -> dict:
    choice = chosen["r1"]
    return {
        "schema_version": JSON_SCHEMA,
        **hw.to_dict(),
        "recommendation": None
        if choice is None
        else {
            "model": choice.name,
            "display_name": display,
            "quant": choice.shape.quant,
            "line": recommendation_line(choice, hw, display),
            "why": why_line(chosen),
            "seconds_per_1000_tokens": seconds_per_1000(choice.plan),
            "plan": choice.plan.to_dict(),
            "alternatives": {policy: _summary(c) for policy, c in chosen.items() if policy != "r1" and c is not None},
            "draft": draft_report(choice, hw),
        },
    }


@command()
def hw(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (schema: docs/hw-json.md)."),
    snapshot: Path | None = typer.Option(None, "--snapshot", help="Replay detection from a saved snapshot."),
    save_snapshot: Path | None = typer.Option(None, "--save-snapshot", help="Save every raw input detection read."),
    rpc: str | None = typer.Option(
        None,
        "--rpc",
        help="Also ask these `r1local worker`s (host:port,...) what they "
        "offer, and plan a model across this PC and them.",
    ),
) -> None:
    """Show CPU, memory, GPUs, NPUs and what llama.cpp can use here, and which R1 distill fits best.

    Example: r1local hw --json
    """
    probe = ReplayProbe.load(snapshot) if snapshot else LiveProbe()
    recorder = RecordingProbe(probe) if save_snapshot else None
    hardware = detect(recorder or probe)
    if recorder and save_snapshot:
        recorder.save(save_snapshot)
    chosen, display = recommend(hardware)
    workers = rpc_report(hardware, parse_endpoints(rpc), *catalog_candidates()) if rpc else None
    if as_json:
        out.print_json(json.dumps({**report_json(hardware, chosen, display), **({"rpc": workers} if rpc else {})}))
    else:
        _print_report(hardware, chosen, display)
        if workers:
            print_rpc_report(workers)
        if save_snapshot:
            out.print(f"Snapshot saved to {save_snapshot}", style="dim")
