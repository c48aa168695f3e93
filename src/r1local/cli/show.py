"""`show` (alias `inspect`): what a model is, by any name `run` accepts: parameters, context,
quantisation, chat template, license and capabilities, read from the GGUF header, or asked of the
running server that holds the model (it knows names this process does not, and the context it gives)."""

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
from ..units import human_size
from .app import alias, command, out
from .backend import resident
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
    chat_template, facts = describe(model)
    if template:
        out.print(strip_controls(chat_template or ""), markup=False)  # a file's text may be hostile
        return
    if as_json:
        out.print_json(json.dumps(facts))
        return
    out.print(facts_table(facts))


def describe(model: str) -> tuple[str | None, dict]:
    """The chat template and facts of `model`: from the server that holds it, else from its file here."""
    address = ModelAddress.parse(model, allow_paths=True)
    served, url = None, ""
    with resident(address) as server:
        if server is not None:
            served, url = server.show(address.for_server), server.url
    if served is not None:
        return served.get("template") or None, _served_facts(served, url)
    return _file_facts(address)


def facts_table(facts: dict) -> Table:
    table = Table(show_header=False, box=None)
    for key, value in facts.items():
        table.add_row(key.replace("_", " "), _human(key, value))
    return table


def _file_facts(address: ModelAddress) -> tuple[str | None, dict]:
    """The chat template and the facts of a model file on this disk (never downloads)."""
    path = resolve(address)
    info = read_gguf(path)
    engine = registry.engine_for(path, address.engine)
    capabilities = declared(engine, ChatTemplate(info.chat_template), info.context_length)
    return info.chat_template, {
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


def _served_facts(body: dict, url: str) -> dict:
    """The same facts from a server's /api/show (Ollama's shape); the context is the one it serves."""
    info, details = body.get("model_info") or {}, body.get("details") or {}
    arch = info.get("general.architecture") or details.get("family")

    def of_arch(key: str):
        return info.get(f"{arch}.{key}")

    return {
        "served_by": url,
        "name": info.get("general.name"),
        "architecture": arch,
        "parameters": info.get("general.parameter_count"),
        "quantization": details.get("quantization_level"),
        "context_length": of_arch("context_length"),
        "layers": of_arch("block_count"),
        "embedding_length": of_arch("embedding_length"),
        "heads": of_arch("attention.head_count"),
        "kv_heads": of_arch("attention.head_count_kv"),
        "tokenizer": info.get("tokenizer.ggml.model"),
        "vocab_size": of_arch("vocab_size"),
        "chat_template": bool(body.get("template")),
        "license": info.get("general.license"),
        "capabilities": body.get("capabilities") or [],
    }


alias("inspect", show, help="Same as show.")


def _human(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "file_size":
        return human_size(value)
    if key == "parameters":
        return f"{value / 1e9:.2f} B" if value >= 1e8 else f"{value / 1e6:.2f} M"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return strip_controls(", ".join(value))
    return f"{value:,}" if isinstance(value, int) else strip_controls(str(value))
