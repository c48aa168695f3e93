"""Help in words: each value's placeholder says what to give (MODEL, NUMBER, FILE, HOST:PORT,...)
instead of a Python type (<str>, <float range>, {model}), and `r1local -h` lists the everyday
commands first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from typer.core import TyperArgument, TyperCommand, TyperGroup

if TYPE_CHECKING:  # typer's commands take its own copy of click's types
    from typer._click import Context, HelpFormatter

EVERYDAY = ("run", "chat", "pull", "list", "ls", "ps", "stop", "serve", "show", "inspect", "rm", "models", "hw")
NAMED = {  # what a text value is, where its name does not say it
    "name": "MODEL", "models": "MODEL", "texts": "TEXT", "tensor_split": "SHARES", "rpc": "HOST:PORT,...",
    "kv_type": "TYPE", "host": "ADDRESS", "api_key": "KEY", "cors_origin": "ORIGIN", "allowed_host": "HOSTNAME",
    "keep_alive": "DURATION", "upstream": "NAME=URL", "alias": "NAME=MODEL",
}


def placeholder(param) -> str | None:
    """The word shown for a parameter's value; None for a flag, which takes none."""
    if getattr(param, "is_flag", False):
        return None
    kind = param.type_descriptor.annotation
    if kind in (int, float):
        word = "NUMBER"
    elif param.type_descriptor.is_path:
        word = "FILE"
    else:
        word = NAMED.get(param.name, param.name.upper())
    return f"{word}..." if param.nargs == -1 else word


class Command(TyperCommand):
    """A command whose usage line and help name values in words."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.metavar is None and (word := placeholder(param)):
                param.metavar = word

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                word = param.metavar or ""  # __init__ gave every argument its word
                pieces.append(word if param.required else f"[{word}]")
        return pieces

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        params = self.get_params(ctx)
        arguments = [(p.metavar or "", p.help or "") for p in params if isinstance(p, TyperArgument) and not p.hidden]
        options = [record for p in params if p.param_type_name == "option" and (record := p.get_help_record(ctx))]
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class Group(TyperGroup):
    """The command list with what most people use first, the rest after in the order they were added."""

    def list_commands(self, ctx: Context) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda name: EVERYDAY.index(name) if name in EVERYDAY else len(EVERYDAY))
