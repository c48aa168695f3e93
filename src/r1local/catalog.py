"""The catalog of R1 distills (their repositories, quantisations and shapes) and what GGUF file
names say: quantisation and split parts. The names users type are parsed in names.py."""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import config
from .errors import ModelNotFound, UsageError
from .fit import ModelShape

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GB = 10**9
# -00001-of-00003.gguf: llama.cpp's split naming; the first part names the model.
SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
# the quantisation is the last token of a GGUF name: ...-Q4_K_M.gguf, ...-Q8_0-00001-of-00002.gguf
QUANT_RE = re.compile(
    r"(?:^|[-_.])((?:IQ|Q)\d(?:_[A-Z0-9]+)*|F16|BF16|F32)(?=(?:-\d{5}-of-\d{5})?\.gguf$)", re.IGNORECASE
)


# An OpenVINO IR folder as OpenVINO's organisation publishes it; the model's .xml comes first.
IR_FILES = (
    "openvino_model.xml",
    "openvino_model.bin",
    "openvino_tokenizer.xml",
    "openvino_tokenizer.bin",
    "openvino_detokenizer.xml",
    "openvino_detokenizer.bin",
    "config.json",
    "generation_config.json",
)


@dataclass(frozen=True)
class Variant:
    """One downloadable quantisation of a catalog distill: a GGUF, or an OpenVINO IR folder."""

    distill: Distill
    quant: str
    size_bytes: int  # approximate; a pull uses the Hub's exact sizes
    files: tuple[str, ...]  # every part, the first one is what the engine opens
    ir_repo: str | None = None  # an OpenVINO IR folder's own repository
    for_npu: bool = False  # made for the Intel NPU (symmetric INT4)

    @property
    def name(self) -> str:
        return f"r1:{self.distill.name}-{self.quant.lower()}"

    @property
    def repo(self) -> str:
        return self.ir_repo or self.distill.repo

    @property
    def engine(self) -> str:
        return "openvino" if self.ir_repo else "llama.cpp"

    @functools.cached_property
    def shape(self) -> ModelShape:
        """The numbers the memory fit needs, before the file is downloaded."""
        d = self.distill
        return ModelShape.from_arch(
            self.name,
            params=round(d.params_b * 1e9),
            layers=d.layers,
            kv_heads=d.kv_heads,
            head_dim=d.head_dim,
            embedding=d.embedding,
            vocab=d.vocab,
            trained_ctx=d.context,
            file_bytes=self.size_bytes,
            quant=self.quant,
            n_heads=d.heads,
        )


@dataclass(frozen=True)
class Distill:
    name: str  # "7b"
    file_prefix: str  # "DeepSeek-R1-Distill-Qwen-7B"
    repo: str
    arch: str
    params_b: float
    layers: int
    embedding: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    context: int
    quant_sizes: tuple[tuple[str, float, int], ...]  # (quant, GB, parts)
    openvino: tuple[tuple[str, str, float, bool], ...] = ()  # (name, IR repository, GB, for the NPU)
    draft: str = ""  # the distill that drafts for it (same vocabulary), for --draft auto; "": none here

    @functools.cached_property
    def variants(self) -> dict[str, Variant]:
        """The GGUF quantisations (what llama.cpp and the memory fit choose among)."""
        return {
            q: Variant(self, q, round(gb * GB), _files(self.file_prefix, q, parts)) for q, gb, parts in self.quant_sizes
        }

    @functools.cached_property
    def ir_variants(self) -> dict[str, Variant]:
        """OpenVINO IR folders of this distill, named like quantisations (r1:1.5b-npu)."""
        return {q: Variant(self, q, round(gb * GB), IR_FILES, repo, npu) for q, repo, gb, npu in self.openvino}


def _files(prefix: str, quant: str, parts: int) -> tuple[str, ...]:
    stem = f"{prefix}-{quant}"
    if parts <= 1:
        return (f"{stem}.gguf",)
    return tuple(f"{stem}/{stem}-{i:05d}-of-{parts:05d}.gguf" for i in range(1, parts + 1))


@dataclass(frozen=True)
class Catalog:
    distills: tuple[Distill, ...]
    default_quant: str
    quant_order: tuple[str, ...]

    def distill(self, name: str) -> Distill:
        for d in self.distills:
            if d.name == name.lower():
                return d
        known = ", ".join(f"r1:{d.name}" for d in self.distills)
        raise ModelNotFound(f"r1:{name} is not in the catalog.", f"Known distills: {known}.")

    def variants(self) -> list[Variant]:
        return [v for d in self.distills for v in self.ordered(d)]

    def ordered(self, distill: Distill) -> list[Variant]:
        """The distill's quantisations, best quality first."""
        rank = {q: i for i, q in enumerate(self.quant_order)}
        return sorted(distill.variants.values(), key=lambda v: rank.get(v.quant, len(rank)))

    def variant(self, distill: str, quant: str | None = None) -> Variant:
        d = self.distill(distill)
        quant = (quant or self.default_quant).upper()
        found = d.variants.get(quant) or d.ir_variants.get(quant)
        if found is None:
            known = ", ".join(v.name for v in [*self.ordered(d), *d.ir_variants.values()])
            raise ModelNotFound(f"r1:{d.name} has no {quant} file in the catalog.", f"Choose one of: {known}.")
        return found

    def draft_for(self, arch: str, params: int, file: str) -> str:
        """The catalog name of the model that drafts for a distill of this architecture and size."""
        same = [d for d in self.distills if d.arch == arch]
        if not same:
            raise UsageError(
                f"--draft auto knows drafts for the R1 distills; {file} is a {arch or 'different'} model.",
                "Give the draft model by name or path: --draft MODEL.",
            )
        nearest = min(same, key=lambda d: abs(d.params_b * 1e9 - params))
        if nearest.draft:
            return f"r1:{nearest.draft}"
        if arch == "llama":
            raise UsageError(
                "The Llama distills need a draft with Llama 3's vocabulary, and the smallest Llama distill is 8B.",
                "Give a small Llama 3 GGUF (Llama-3.2-1B) with --draft PATH, or use --spec ngram.",
            )
        raise UsageError(f"{file} is the smallest distill: nothing smaller drafts for it.", "Use --spec ngram.")

    def npu_variants(self) -> list[Variant]:
        """The OpenVINO folders made for the Intel NPU, smallest distill first."""
        return [v for d in self.distills for v in d.ir_variants.values() if v.for_npu]

    def find_file(self, repo: str, filename: str) -> Variant | None:
        """The catalog variant a cached Hub file belongs to, if any (for `list` and `rm`)."""
        for v in self.variants() + [v for d in self.distills for v in d.ir_variants.values()]:
            if v.repo.lower() == repo.lower() and filename in v.files:
                return v
        return None


def load(path: Path | None = None) -> Catalog:
    """The catalog from R1LOCAL_CATALOG, or the one shipped inside the package."""
    path = path or config.catalog_path()
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("r1local").joinpath("data/catalog.toml").read_text(encoding="utf-8")
    return _parse(text)


@functools.lru_cache(maxsize=8)
def _parse(text: str) -> Catalog:
    data = tomllib.loads(text)
    distills = []
    for m in data["model"]:
        sizes = tuple(
            (q, float(v["gb"]), int(v.get("parts", 1))) if isinstance(v, dict) else (q, float(v), 1)
            for q, v in m["quants"].items()
        )
        fields = {k: m[k] for k in Distill.__dataclass_fields__ if k not in ("quant_sizes", "openvino", "draft")}
        folders = tuple(
            (q.upper(), v["repo"], float(v["gb"]), bool(v.get("npu", False))) for q, v in m.get("openvino", {}).items()
        )
        distills.append(Distill(**fields, quant_sizes=sizes, openvino=folders, draft=m.get("draft", "")))
    return Catalog(
        tuple(distills),
        data.get("default_quant", "Q4_K_M").upper(),
        tuple(q.upper() for q in data.get("quant_order", ())),
    )


# --------------------------------------------------------------------------- file names


def quant_of(filename: str) -> str | None:
    """The quantisation a GGUF file name carries (DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf -> Q4_K_M)."""
    m = QUANT_RE.search(Path(filename).name)
    return m.group(1).upper() if m else None


def split_parts(filename: str, available: list[str]) -> tuple[str, ...]:
    """All parts of a split GGUF given its first part, in order; a single file stays alone."""
    m = SPLIT_RE.search(filename)
    if not m:
        return (filename,)
    count = int(m.group(2))
    stem = filename[: m.start()]
    parts = tuple(f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1))
    missing = [p for p in parts if p not in available]
    if missing:
        raise ModelNotFound(f"Split model {filename} is missing parts: {', '.join(missing)}.")
    return parts


def pick_by_quant(repo: str, quant: str, files: list[str]) -> tuple[str, ...]:
    """The file (or split parts) of `repo` whose name carries `quant`."""
    ggufs = [f for f in files if f.lower().endswith(".gguf")]
    firsts = [f for f in ggufs if quant_of(f) == quant and (not SPLIT_RE.search(f) or "-00001-of-" in f)]
    if not firsts:
        quants = sorted({q for f in ggufs if (q := quant_of(f))})
        hint = f"It has: {', '.join(quants)}." if quants else "It holds no GGUF files."
        raise ModelNotFound(f"{repo} has no {quant} GGUF file.", hint)
    # prefer a single file over a split one, then the shortest (plainest) name
    first = min(firsts, key=lambda f: (bool(SPLIT_RE.search(f)), len(f)))
    return split_parts(first, files)
