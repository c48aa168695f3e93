"""`hw`'s draft model advice: whether the catalog has a draft for the recommended distill (what
`--draft auto` loads), what the draft adds to the fit (its weights and its KV cache at the planned
context and KV type, fit_draft.py), where it would run and whether the pair still fits; or why
there is none (the Llama distills need a Llama 3 vocabulary, the 1.5B is the smallest)."""

from __future__ import annotations

from .. import catalog
from ..choice import NPU_VERDICT, Choice
from ..errors import UsageError
from ..fit_draft import plan_draft
from ..hardware import Hardware
from ..hardware.model import GiB


def draft_report(choice: Choice | None, hw: Hardware) -> dict | None:
    """The draft advice for the recommended model (None: no GGUF recommended, nothing to say)."""
    if choice is None or choice.plan.verdict == NPU_VERDICT:
        return None
    known = catalog.load()
    variant = next((v for v in known.variants() if v.name == choice.name), None)
    if variant is None:
        return None
    try:
        name = known.draft_for(variant.distill.arch, variant.shape.params, variant.distill.file_prefix)
    except UsageError as error:
        return {"model": None, "why": error.message, "instead": error.hint}
    draft = known.variant(name.removeprefix("r1:"))
    drafting = plan_draft(draft.shape, hw, choice.plan)
    return {
        "model": draft.name,
        "display_name": f"{draft.distill.file_prefix} {draft.quant}",
        "option": "--draft auto",
        "device": "GPU" if drafting.on_gpu else "CPU",
        "n_gpu_layers": drafting.plan.n_gpu_layers,
        "n_ctx": drafting.plan.n_ctx,
        "n_parallel": drafting.plan.n_parallel,
        "kv_type": drafting.plan.kv_type,
        "weights_bytes": drafting.weights_bytes,
        "kv_bytes": drafting.kv_bytes,
        "total_bytes": drafting.total_bytes,
        "pair_fits": drafting.pair_fits,
    }


def draft_line(report: dict) -> str:
    if report["model"] is None:
        return f"Draft model: none in the catalog: {report['why']} {report['instead'] or ''}".rstrip()
    where = "on the GPU" if report["device"] == "GPU" else "on the CPU"
    pair = (
        "the pair fits"
        if report["pair_fits"]
        else "the pair does NOT fit: lower --ctx, use --kv-type q8_0, or use --spec ngram (no second model)"
    )
    return (
        f"Draft model: {report['display_name']} can draft for it (--draft auto), {where}: "
        f"{report['total_bytes'] / GiB:.1f} GiB more (weights {report['weights_bytes'] / GiB:.1f} GiB, "
        f"KV cache {report['kv_bytes'] / GiB:.2f} GiB at the {report['n_ctx']}-token context, {report['kv_type']}); "
        f"{pair}"
    )
