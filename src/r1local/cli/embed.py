"""`embed`: embedding vectors for texts, one JSON array per line (the same vectors the server gives);
a running server that holds the model computes them."""

from __future__ import annotations

import json

import typer

from ..names import ModelAddress
from .app import command, out
from .backend import note_ignored, open_model, resident
from .options import CTX_OPT, LOCAL_OPT, MODEL_ARG, THREADS_OPT, YES_OPT


@command()
def embed(
    model: str = MODEL_ARG,
    texts: list[str] = typer.Argument(..., help="One or more texts to embed."),
    threads: int | None = THREADS_OPT,
    ctx: int | None = CTX_OPT,
    yes: bool = YES_OPT,
    local: bool = LOCAL_OPT,
) -> None:
    """Print each text's normalised embedding as a JSON array, one per line.

    Example: r1local embed r1:1.5b "first text" "second text"
    """
    address = ModelAddress.parse(model, allow_paths=True)
    vectors = None
    with resident(address, local=local) as server:
        if server is not None:
            note_ignored(server, model, threads=threads, ctx=ctx)
            vectors = server.embed(address.for_server, texts)
    if vectors is None:
        with open_model(address, ctx, threads, None, yes) as loaded:
            vectors, _ = loaded.embed(texts)
    for vector in vectors:
        out.print(json.dumps([round(x, 7) for x in vector]), markup=False, highlight=False, soft_wrap=True)
