"""`embed`: embedding vectors for texts, one JSON array per line (the same vectors the server gives)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from .app import command, out
from .run import CTX_OPT, MODEL_ARG, THREADS_OPT, YES_OPT, open_model


@command()
def embed(
    model: str = MODEL_ARG,
    texts: list[str] = typer.Argument(..., help="One or more texts to embed."),
    threads: Optional[int] = THREADS_OPT,
    ctx: Optional[int] = CTX_OPT,
    yes: bool = YES_OPT,
) -> None:
    """Print each text's normalised embedding as a JSON array, one per line.

    Example: r1local embed r1:1.5b "first text" "second text"
    """
    with open_model(model, ctx, threads, None, yes) as loaded:
        vectors, _ = loaded.embed(texts)
    for vector in vectors:
        out.print(json.dumps([round(x, 7) for x in vector]), markup=False, highlight=False, soft_wrap=True)
