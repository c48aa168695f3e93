"""`r1local accelerate`: install llama-cpp-python with the GPU backend this PC needs (a prebuilt
wheel from llama-cpp-python's own index where one exists, else a source build), then prove that
llama.cpp puts a model's layers on the GPU."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import typer
from rich.text import Text

from .. import config
from ..accelerate import build as builder
from ..accelerate import patches, prebuilt
from ..accelerate.choice import Choice, choose, prebuilt_backend
from ..errors import BuildError, UsageError
from ..hardware import Hardware, detect_now
from ..hardware.model import GiB
from .app import command, err, out

MiB = 1024**2
QUIET_PRINT_S = 30.0  # without a terminal: one progress line at most this often


class ProgressLine:
    """The build's progress as one line: a live status on a terminal, a line now and then in a log."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = builder.Progress(0.0, 0, 0, "starting")
        self.started = time.monotonic()
        self.printed = -QUIET_PRINT_S

    def __rich__(self) -> Text:
        return Text(self.text(time.monotonic() - self.started))

    def text(self, elapsed: float) -> str:
        p = self.last
        now = f"step {p.done}/{p.total}: {p.step}" if p.total else p.step
        return f"building {self.label}: {builder.clock(elapsed)}, {now}"

    def update(self, progress: builder.Progress) -> None:
        self.last = progress
        if not err.is_terminal and progress.elapsed - self.printed >= QUIET_PRINT_S:
            self.printed = progress.elapsed
            err.print(self.text(progress.elapsed), markup=False, style="dim")


def _os_release() -> str | None:
    try:
        return Path("/etc/os-release").read_text()
    except OSError:
        return None


def _print_plan(choice: Choice, build: builder.Build, force: bool) -> None:
    b = choice.backend
    out.print(f"Source build: {b.label} ({choice.why})", markup=False)
    if choice.gpus:
        out.print("For: " + ", ".join(g.name for g in choice.gpus), markup=False)
    out.print(
        f'llama-cpp-python {build.version}, built from source with CMAKE_ARGS="{choice.cmake_args}"', markup=False
    )
    for what, where in choice.check.found.items():
        out.print(f"  found {what}: {where}", markup=False, style="dim")
    for req in choice.check.missing:
        out.print(f"  missing {req.what}", markup=False, style="yellow")
    if b.name == "vulkan" and patches.vulkan_headers_lack_layer_settings():
        out.print(
            "  the installed Vulkan headers predate VK_EXT_layer_settings: the build guards its one use",
            markup=False,
            style="dim",
        )
    if choice.already and not force:
        out.print(f"The installed build already has {b.label}: nothing to build, checking that it works.", markup=False)
    elif build.cached_wheel():
        out.print(f"Built before: installing {build.cached_wheel()}", markup=False)
    else:
        out.print(f"Build log: {build.log_path}", markup=False, style="dim")
    out.print(f"To go back to the CPU build later: {builder.back_to_cpu(build.version)}", markup=False, style="dim")


def _report(result: dict) -> bool:
    """Print what the verification saw; True when llama.cpp put the probe model's layers on a GPU."""
    on_devices = result["on_devices"]
    if result["offloaded"] and on_devices:
        for name, size in on_devices.items():
            taken = result["memory_taken"].get(name)
            seen = f"; the device's free memory fell by {taken / MiB:.1f} MiB" if taken else ""
            out.print(
                f"Verified: llama.cpp put {result['offloaded']}/{result['offloadable']} layers of a test model on "
                f"{name} ({size / MiB:.1f} MiB of buffers there{seen}); decoding "
                + ("works." if result["decoded"] else "FAILED."),
                markup=False,
            )
    for v in result["verdicts"]:
        mark = "[green]used[/]" if v["usable"] else "[yellow]not used[/]"
        out.print(f"  {mark} {v['device']}: {v['status']} - {v['why']}")
    return bool(result["offloaded"] and on_devices and result["decoded"])


def _prebuilt_wheel(hw: Hardware, choice: Choice, forced: str | None, version: str) -> Path | None:
    """The prebuilt wheel for this PC's backend, downloaded and checked; None (with the reason
    printed) where there is none to take."""
    backend = prebuilt_backend(hw, choice, forced)
    try:
        tag = prebuilt.wheel_tag(
            backend.name, hw, choice.gpus, prebuilt.cuda_driver_version() if backend.name == "cuda" else None
        )
        out.print(
            f"Looking for a prebuilt {backend.label} wheel of llama-cpp-python {version} ({tag}) on "
            f"{prebuilt.index_url()} ...",
            markup=False,
        )
        wheel = prebuilt.find(tag, version)
        out.print(f"Downloading {wheel.filename}", markup=False, style="dim")
        return prebuilt.download(wheel, config.build_cache() / "prebuilt" / tag)
    except prebuilt.Unavailable as e:
        out.print(f"No prebuilt wheel: {e}; building from source instead.", markup=False, style="yellow")
        return None


def _trial(wheel: Path, build: builder.Build) -> dict | None:
    """The verification of a prebuilt wheel unpacked beside the installed build, before it replaces
    it: None (the reason printed) when it does not load or decode here, so that a wheel built for
    another system never leaves a broken llama-cpp-python behind."""
    with tempfile.TemporaryDirectory(prefix="r1local-trial-") as tmp:
        try:
            builder.stage(wheel, Path(tmp))
            path = os.pathsep.join(filter(None, [tmp, os.environ.get("PYTHONPATH")]))
            result = builder.run_verify(builder.gguf_writer(build), env={"PYTHONPATH": path})
        except BuildError as e:
            out.print(
                f"The prebuilt wheel does not work here ({e.message}); building from source instead.",
                markup=False,
                style="yellow",
            )
            return None
    if not result["decoded"]:
        out.print(
            "The prebuilt wheel loads but does not decode here; building from source instead.",
            markup=False,
            style="yellow",
        )
        return None
    return result


def _build(choice: Choice, build: builder.Build, sdist: Path | None) -> Path:
    """The source build, its progress on one line wherever it runs."""
    if not choice.check.ok:
        raise BuildError(
            f"The {choice.backend.label} build needs "
            + ", ".join(r.what for r in choice.check.missing)
            + ", not found.",
            f"Install: {choice.check.install_hint()}  - then run `r1local accelerate` again.",
        )
    line = ProgressLine(choice.backend.label)
    started, cached = time.monotonic(), build.cached_wheel() is not None
    if err.is_terminal:
        with err.status(line):
            wheel, fixes = builder.make_wheel(build, line.update, sdist)
    else:
        wheel, fixes = builder.make_wheel(build, line.update, sdist)
    for fix in fixes:
        out.print(f"  source fix: {fix}", markup=False, style="dim")
    if not cached:
        out.print(f"Built {wheel.name} in {(time.monotonic() - started) / 60:.1f} min; installing it.", markup=False)
    return wheel


@command()
def accelerate(
    backend: str | None = typer.Option(
        None,
        "--backend",
        help="Install this backend instead of the one detected: cuda, hip, vulkan, metal, sycl, opencl.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan (and whether a prebuilt wheel exists); install nothing."
    ),
    force: bool = typer.Option(False, "--force", help="Install even when the installed build has the backend already."),
    source: bool = typer.Option(False, "--source", help="Build from source even where a prebuilt wheel exists."),
    sdist: Path | None = typer.Option(
        None,
        "--sdist",
        exists=True,
        dir_okay=False,
        help="Build from this llama-cpp-python source archive (.tar.gz) "
        "instead of downloading it (for machines without a package index; implies --source).",
    ),
) -> None:
    """Install llama-cpp-python for this PC's GPU (CUDA, ROCm, Vulkan, Metal, SYCL): a prebuilt wheel
    from llama-cpp-python's own index where one exists, else a source build; then check that
    llama.cpp really puts a model on the GPU.

    Example: r1local accelerate --dry-run
    """
    hw = detect_now()
    # with a source archive, a machine without any llama-cpp-python yet can build its first one
    version = hw.build.version if hw.build and hw.build.version else (sdist and builder.sdist_version(sdist))
    if not version:
        raise UsageError("llama-cpp-python is not installed.", "pip install llama-cpp-python, then run this again.")
    choice = choose(hw, backend, _os_release())
    if choice is None:
        out.print("No GPU found on this PC: the CPU build it has is the right one; nothing to do.")
        return
    build = builder.Build(version, choice.backend.name, choice.cmake_args, choice.build_env())
    rebuild = force or not choice.already
    wheel = _prebuilt_wheel(hw, choice, backend, version) if rebuild and not (source or sdist) else None
    tried = _trial(wheel, build) if wheel and not dry_run else None
    if wheel and not dry_run and tried is None:
        wheel = None  # it does not work here: the reason is printed, the source build follows
    if wheel is None:
        _print_plan(choice, build, force)
    if dry_run:
        out.print(
            f"Dry run: {wheel.name} would be installed." if wheel else "Dry run: nothing built.",
            style="dim",
            markup=False,
        )
        return
    if rebuild:
        builder.install(wheel or _build(choice, build, sdist), version)
    result = tried or builder.run_verify(builder.gguf_writer(build, sdist))
    if not _report(result):
        raise BuildError(
            no_device_line(result, choice.backend.label),
            "Check the GPU driver (nvidia-smi, rocminfo or vulkaninfo must list the GPU); a software "
            "Vulkan device (lavapipe) needs GGML_VK_VISIBLE_DEVICES=0. "
            f"To go back: {builder.back_to_cpu(version)}",
        )
    out.print(f"Done: models now load on the GPU ({_budget(result)}). `r1local hw` shows the plan for each model.")


def no_device_line(result: dict, label: str) -> str:
    """One line for a build that found no device to put the test model on, whatever the cause."""
    return (
        f"llama.cpp did not put the test model on a GPU: the build has {', '.join(result['backends']) or 'CPU'} "
        f"but found no {label} device" + (f" ({result['note']})." if result.get("note") else ".")
    )


def _budget(result: dict) -> str:
    devices = {d["name"]: d for d in result["devices"]}
    names = list(result["on_devices"])
    total = sum(devices[n]["memory_total"] or 0 for n in names if n in devices)
    return ", ".join(names) + (f", {total / GiB:.1f} GiB" if total else "")
