"""From a model address to a GGUF file on this disk: the one call `run`, `chat` and `serve` make.

    path = resolve(ModelAddress.parse("r1:7b", allow_paths=True), pull_if_missing=True, confirm=ask)

A model already in the cache is found without touching the network. A missing one is pulled when
`pull_if_missing` is set and `confirm` (if given) agrees; with HF_HUB_OFFLINE=1 it is an
OfflineError instead. A path resolves only when it was parsed where paths are allowed (the command
line), so a request's model name can never open an arbitrary file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from . import catalog, choice, config, store
from .catalog import Variant
from .errors import InsufficientMemory, ModelNotFound, OfflineError, UsageError
from .names import Kind, ModelAddress
from .store import LocalModel, Target

Confirm = Callable[[str], bool]
Notify = Callable[[str], None]


def resolve(
    address: ModelAddress,
    *,
    pull_if_missing: bool = False,
    confirm: Confirm | None = None,
    revision: str | None = None,
    progress: type | None = None,
    notify: Notify | None = None,
) -> Path:
    """The local GGUF file (first part of a split model) that `address` means, pulled if need be.

    confirm: asked "<question>?" before a download; returning False cancels it (None: no question).
    progress: a tqdm-like class for the download bars (see download.pull).
    notify: told what the choice or the download does where the name alone does not say it.
    """
    if address.kind is Kind.PATH:
        if not address.on_disk or address.path is None:
            raise address.unknown()
        return Path(address.path)
    target, label = choose(address, revision=revision, prefer_local=not pull_if_missing, notify=notify)
    path = store.find_local(target)
    if path is None:
        if config.hf_offline():
            raise OfflineError(
                f"{label} is not downloaded, and HF_HUB_OFFLINE=1 forbids downloading it.",
                "Unset HF_HUB_OFFLINE, or use one of the models r1local list shows.",
            )
        if not pull_if_missing:
            raise ModelNotFound(f"{label} is not downloaded.", f"Download it first: r1local pull {label}")
        from . import download  # the Hub client only when something is downloaded

        if confirm is not None:
            _, files = download.plan(target, notify)
            size = store.human_size(sum(f.size for f in files))
            if not confirm(f"{label} is not downloaded yet. Download it now ({size})?"):
                raise UsageError(f"{label} was not downloaded.", f"Download it with: r1local pull {label}")
        path = download.pull(target, progress=progress, notify=notify)
    store.mark_used(path)
    return path


def choose(
    ref: ModelAddress, *, revision: str | None = None, prefer_local: bool = False, notify: Notify | None = None
) -> tuple[Target, str]:
    """The repository files an address stands for, and the name to show for them.
    `r1:7b` means the 7B already downloaded if there is one, else Q4_K_M where it fits (as Ollama's
    tags do), else the best quality that fits, told to `notify`. Plain `r1` (and `r1:best`,
    `r1:fast`, `r1:npu`) means the catalog's choice for this machine, or the downloaded models'
    when prefer_local (a caller that will not download) or offline."""
    if ref.kind not in (Kind.HUB, Kind.CATALOG, Kind.CHOICE):
        raise ref.unknown()
    if ref.repo is not None:
        files = (ref.filename,) if ref.filename else ()
        target = Target(ref.repo, files=files, quant=None if files else ref.quant or "Q4_K_M", revision=revision)
        return target, ref.name
    cat = catalog.load()
    if ref.distill is not None and ref.quant is not None:
        variant = cat.variant(ref.distill, ref.quant)
    elif ref.distill is not None:
        variant = plain_size(cat, cat.distill(ref.distill), notify)
    else:
        candidates = cat.variants()
        npu = cat.npu_variants()
        if prefer_local or config.hf_offline():
            candidates, npu = local_first(candidates), local_first(npu)
        variant = best_for_machine(candidates, ref.policy, npu)
    return _target(variant, revision), variant.name


def plain_size(cat: catalog.Catalog, distill: catalog.Distill, notify: Notify | None = None) -> Variant:
    """The file a plain size (r1:7b) means: one already downloaded, else the catalog's default
    quantisation where it fits, else the best quality that fits (and `notify` is told why)."""
    variants = cat.ordered(distill)
    default = distill.variants.get(cat.default_quant)
    downloaded = [v for v in variants if store.find_local(_target(v))]
    if downloaded:
        return default if default in downloaded else downloaded[0]
    if len(variants) == 1:
        return variants[0]
    from . import hardware  # the machine is only probed when a choice depends on it

    chosen = choice.plain_size(
        hardware.detect_live(), [(v.name, v.shape) for v in variants], default.name if default else None
    )
    if chosen is None:
        return default or variants[0]  # nothing fits: the load says so with the numbers
    if chosen.why and notify is not None and default is not None:
        notify(f"r1:{distill.name} means {default.quant}, as in Ollama, but {chosen.why}.")
    return next(v for v in variants if v.name == chosen.name)


def local_first(candidates: list[Variant]) -> list[Variant]:
    """The downloaded candidates, or all of them when none is."""
    return [v for v in candidates if store.find_local(_target(v))] or candidates


def _target(variant: Variant, revision: str | None = None) -> Target:
    return Target(variant.repo, files=variant.files, revision=revision)


def best_for_machine(candidates: list[Variant], policy: str = "r1", npu: Sequence[Variant] = ()) -> Variant:
    """The candidate the choice policy picks for this machine among the GGUF files and the NPU's
    folders (a lone candidate without asking it)."""
    if len(candidates) == 1 and not npu:
        return candidates[0]
    from . import fit_npu, hardware  # the machine is only probed when a choice depends on it

    hw = hardware.detect_live()
    npu_plans = fit_npu.npu_plans(hw, list(npu))
    if policy == "r1:npu" and not npu_plans:
        raise ModelNotFound(
            "r1:npu names the distill made for an Intel NPU, and this PC has none.",
            "Use r1 (r1local hw shows what it means here).",
        )
    chosen = choice.choose(hw, [(v.name, v.shape) for v in candidates], policy, npu_plans)
    if chosen is None:
        raise InsufficientMemory(
            f"None of {', '.join(v.name for v in candidates[:3])}{'...' if len(candidates) > 3 else ''} "
            "fits this machine's free memory.",
            "See what each needs with: r1local models (or name a quantisation to download anyway).",
        )
    return next(v for v in [*candidates, *npu] if v.name == chosen.name)


def installed_matches(ref: ModelAddress) -> list[LocalModel]:
    """The downloaded models an address refers to (for `rm`): exact for a full name, the model `run`
    would use for plain `r1`, every quantisation for `r1:7b` or `hf.co/USER/REPO`."""
    if ref.kind is Kind.PATH:
        raise UsageError(
            f"{ref.name} is a file path, not a downloaded model.",
            "r1local rm only removes models it downloaded; delete the file yourself.",
        )
    if ref.kind is Kind.CHOICE:
        path = store.find_local(choose(ref, prefer_local=True)[0])
        return [m for m in store.installed() if m.path == path]
    if ref.repo is not None:
        repo, first, quant = ref.repo, ref.filename, ref.quant
        return [
            m
            for m in store.installed()
            if m.repo.lower() == repo.lower()
            and (first is None or m.files[0] == first)
            and (quant is None or m.quant == quant)
        ]
    if ref.kind is not Kind.CATALOG or ref.distill is None:
        raise ref.unknown()
    cat = catalog.load()
    variants = [cat.variant(ref.distill, ref.quant)] if ref.quant else cat.ordered(cat.distill(ref.distill))
    keys = {(v.repo.lower(), v.files[0]) for v in variants}
    return [m for m in store.installed() if (m.repo.lower(), m.files[0]) in keys]
