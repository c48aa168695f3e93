"""`r1local create NAME -f Modelfile` and `r1local cp SOURCE DESTINATION`: presets (presets.py),
as Ollama makes models with its own system prompt and parameters."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import presets
from ..errors import UsageError
from ..names import ModelAddress
from ..resolve import resolve
from .app import command, out


@command()
def create(
    name: str = typer.Argument(..., help="The preset's name, e.g. mario or mario:v2."),
    modelfile: Path = typer.Option(
        Path("Modelfile"), "--file", "-f", help="The Modelfile: FROM, SYSTEM, PARAMETER, MESSAGE lines."
    ),
) -> None:
    """Make a preset: a model with its own system prompt, parameters and opening messages.

    Example: r1local create mario -f ./Modelfile   (then: r1local run mario "Hello")
    """
    try:
        text = modelfile.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(
            f"Cannot read the Modelfile {modelfile}: {getattr(error, 'strerror', None) or error}.",
            "Give a Modelfile with -f PATH.",
        ) from None
    fields = presets.parse_modelfile(text)
    resolve(ModelAddress.parse(presets.base_of(fields["base"]), allow_paths=True))  # the base must be here
    preset = presets.create(name, fields.pop("base"), **fields)
    out.print(f"Created {preset.name} (from {preset.base})")


@command()
def cp(
    source: str = typer.Argument(..., help="A preset or a model."),
    destination: str = typer.Argument(..., help="The new preset's name."),
) -> None:
    """Copy a preset (or name a model as a preset) under another name.

    Example: r1local cp mario mario:backup
    """
    resolve(ModelAddress.parse(presets.base_of(source), allow_paths=True))
    preset = presets.copy(source, destination)
    out.print(f"Copied {source} to {preset.name}")
