"""`r1local hw --rpc`: the workers' devices, the link to each, and the largest distill this PC and
the workers hold together, with its layer split and a speed estimate that counts the network."""

from __future__ import annotations

from rich.table import Table

from ..choice import MIN_TPS
from ..errors import InsufficientMemory
from ..hardware import Hardware
from ..hardware.model import GiB
from ..rpc import probe_all
from ..rpc.plan import SplitPlan, plan_split
from .app import out


def rpc_report(hw: Hardware, endpoints: list[str], candidates: list, names: dict[str, str]) -> dict:
    workers = probe_all(endpoints)  # one line naming a worker that is down
    fitting: list[tuple[str, SplitPlan]] = []
    for name, shape in sorted(candidates, key=lambda c: c[1].file_bytes, reverse=True):
        try:
            fitting.append((name, plan_split(shape, hw, workers, n_ctx=min(8192, shape.trained_ctx))))
        except InsufficientMemory:
            continue
    # the largest that runs at a usable speed, else (as `hw` does) the fastest that fits
    best = next(
        (c for c in fitting if (c[1].decode_tps or 0) >= MIN_TPS),
        max(fitting, key=lambda c: c[1].decode_tps or 0, default=None),
    )
    return {
        "workers": [
            {
                "endpoint": w.endpoint,
                "protocol": w.version,
                "latency_ms": round(w.latency_s * 1e3, 3),
                "bandwidth_mb_s": w.bandwidth_bps and round(w.bandwidth_bps / 1e6, 1),
                "devices": [{"index": d.index, "memory_free": d.free, "memory_total": d.total} for d in w.devices],
            }
            for w in workers
        ],
        "best": None
        if best is None
        else {
            "model": best[0],
            "display_name": names.get(best[0]),
            "n_ctx": best[1].n_ctx,
            "layers": {s.where: s.layers for s in best[1].shares},
            "n_gpu_layers": best[1].n_gpu_layers,
            "decode_tps": _round(best[1].decode_tps),
            "local_decode_tps": _round(best[1].local_decode_tps),
            "assumptions": best[1].link,
        },
    }


def _round(tps: float | None) -> float | None:
    return None if tps is None else round(tps, 1)


def _tps(tps: float | None) -> str:
    return "?" if tps is None else f"{tps:.1f}"


def print_rpc_report(report: dict) -> None:
    t = Table(title="RPC workers", title_justify="left")
    for col in ("Worker", "Devices (free/total)", "Round trip", "Link"):
        t.add_column(col)
    for w in report["workers"]:
        devices = ", ".join(
            f"#{d['index']} {d['memory_free'] / GiB:.1f}/{d['memory_total'] / GiB:.1f} GiB" for d in w["devices"]
        )
        link = f"{w['bandwidth_mb_s']:.0f} MB/s" if w["bandwidth_mb_s"] else "not measured"
        t.add_row(w["endpoint"], devices, f"{w['latency_ms']:.2f} ms", link)
    out.print(t)
    best = report["best"]
    if best is None:
        out.print("Nothing in the catalog fits even in this PC and the workers together.", style="bold")
        return
    layers = ", ".join(f"{where}: {n}" for where, n in best["layers"].items())
    out.print(
        f"Across this PC and the workers: {best['display_name'] or best['model']}, layers {layers}, "
        f"about {_tps(best['decode_tps'])} tokens/s (estimate; this PC alone, if it fitted: "
        f"{_tps(best['local_decode_tps'])})  ->  r1local serve {best['model']} --rpc "
        f"{','.join(w['endpoint'] for w in report['workers'])}",
        style="bold",
        markup=False,
    )
    out.print(f"  {best['assumptions']}", style="dim", markup=False)
