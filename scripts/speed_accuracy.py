"""r1local's decode estimates against published llama.cpp measurements on named hardware.

Reads tests/snapshots/published/measurements.toml (each machine a snapshot), estimates every
model's decode speed on its machine the way `r1local hw` does, and prints the markdown table of
docs/speed-accuracy.md with the median and worst error. Runs against whichever r1local is
importable, so the same table can be made for an older version:

    python scripts/speed_accuracy.py
    PYTHONPATH=/path/to/older/src python scripts/speed_accuracy.py
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import NamedTuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "tests" / "snapshots" / "published"
SOURCES = {
    "#4167": "https://github.com/ggml-org/llama.cpp/discussions/4167",
    "#15013": "https://github.com/ggml-org/llama.cpp/discussions/15013",
}
N_CTX = 4096  # llama-bench and Ollama run short contexts


class Row(NamedTuple):
    machine: str
    hardware: str
    model: str
    published: float
    estimated: float | None
    ceiling: float | None
    source: str

    @property
    def error(self) -> float | None:
        return None if self.estimated is None else self.estimated / self.published - 1


def _shape(key: str, models: dict):
    from r1local import catalog
    from r1local.fit import ModelShape

    if key.startswith("r1:"):
        distill, quant = key[3:].split("-", 1)
        variant = catalog.load().variant(distill, quant.upper())
        return f"{variant.distill.file_prefix} {variant.quant}", variant.shape
    m = models[key]
    return m["label"], ModelShape.from_arch(
        m["label"],
        params=m["params"],
        layers=m["layers"],
        kv_heads=m["kv_heads"],
        head_dim=m["head_dim"],
        embedding=m["embedding"],
        vocab=m["vocab"],
        trained_ctx=m["context"],
        file_bytes=m["file_bytes"],
        quant=m["quant"],
    )


def rows() -> list[Row]:
    from r1local.fit import plan
    from r1local.hardware import ReplayProbe, detect

    table = tomllib.loads((PUBLISHED / "measurements.toml").read_text())
    out = []
    for m in table["measurement"]:
        snapshot = PUBLISHED / f"{m['machine']}.json"
        if not snapshot.exists():
            snapshot = PUBLISHED.parent / f"{m['machine']}.json"
        label, shape = _shape(m["model"], table["models"])
        p = plan(shape, detect(ReplayProbe.load(snapshot)), N_CTX)
        out.append(
            Row(
                m["machine"],
                m["hardware"],
                label,
                m["published"],
                p.decode_tps,
                getattr(p, "decode_ceiling_tps", None),
                SOURCES.get(m["source"], m["source"]),
            )
        )
    return out


def summary(table: list[Row]) -> tuple[float, float]:
    """(median, worst) absolute error; an unknown estimate counts as 100% off."""
    errors = [abs(r.error) if r.error is not None else 1.0 for r in table]
    return statistics.median(errors), max(errors)


def main() -> None:
    table = rows()
    print("| source | hardware | model | published tok/s | estimated tok/s | error |")
    print("|---|---|---|---:|---:|---:|")
    for r in table:
        est = "unknown" if r.estimated is None else f"{r.estimated:.1f}"
        err = "-" if r.error is None else f"{r.error:+.0%}"
        print(
            f"| [{r.source.rsplit('/', 2)[-2]}/{r.source.rsplit('/', 1)[-1]}]({r.source}) | {r.hardware} "
            f"| {r.model} | {r.published:.2f} | {est} | {err} |"
        )
    median, worst = summary(table)
    print(f"\n{len(table)} measurements; median error {median:.0%}, worst {worst:.0%}")


if __name__ == "__main__":
    main()
