"""`show` (alias `inspect`): what a model is, by any name `run` accepts: parameters, context,
quantisation, chat template, license and capabilities, read from the GGUF header."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from ..engine import registry
from ..engine.capabilities import declared
from ..engine.template import ChatTemplate
from ..gguf_meta import read_gguf
from ..names import ModelAddress
from ..resolve import resolve
from .app import alias, command, out
from .options import MODEL_ARG
from .terminal import strip_controls


@command()
def show(
    model: str = MODEL_ARG,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    template: bool = typer.Option(False, "--template", help="Print the chat template itself."),
) -> None:
    """Show what a downloaded model or a .gguf file holds: size, quantisation, context, template,
    license and capabilities.

    Example: r1local show r1:7b
    """
    address = ModelAddress.parse(model, allow_paths=True)
    path = resolve(address)  # never downloads: show what is here
    info = read_gguf(path)
    if template:
        out.print(strip_controls(info.chat_template or ""), markup=False)  # a file's text may be hostile
        return
    engine = registry.engine_for(path, address.engine)
    capabilities = declared(engine, ChatTemplate(info.chat_template), info.context_length)
    facts = {
        "path": str(path),
        "name": info.name,
        "architecture": info.architecture,
        "parameters": info.parameter_count,
        "quantization": info.file_type,
        "file_size": info.file_size,
        "context_length": info.context_length,
        "layers": info.block_count,
        "embedding_length": info.embedding_length,
        "heads": info.head_count,
        "kv_heads": info.head_count_kv,
        "tokenizer": info.tokenizer_model,
        "vocab_size": info.vocab_size,
        "chat_template": info.chat_template is not None,
        "license": info.get("general.license"),
        "capabilities": capabilities.ollama(),
        "tensors": len(info.tensors),
    }
    if as_json:
        out.print_json(json.dumps(facts))
        return
    table = Table(show_header=False, box=None)
    for key, value in facts.items():
        table.add_row(key.replace("_", " "), _human(key, value))
    out.print(table)


alias("inspect", show, help="Same as show.")


def _human(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "file_size":
        return f"{value / 1e6:,.1f} MB"
    if key == "parameters":
        return f"{value / 1e9:.2f} B" if value >= 1e8 else f"{value / 1e6:.2f} M"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value)
    return f"{value:,}" if isinstance(value, int) else strip_controls(str(value))
