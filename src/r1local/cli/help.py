"""Help in words: each value's placeholder says what to give (MODEL, NUMBER, FILE, HOST:PORT,...)
instead of a Python type (<str>, <float range>, {model}), lines break only at spaces (never inside
--max-tokens or a model name, as click's wrapping does at hyphens), and `r1local -h` lists the
everyday commands first."""

from __future__ import annotations

import re
import textwrap

import typer
from typer._click import Context as ClickContext  # what typer's commands declare they take
from typer._click import HelpFormatter
from typer.core import TyperArgument, TyperCommand, TyperGroup

EVERYDAY = ("run", "chat", "pull", "list", "ls", "ps", "stop", "serve", "show", "inspect", "rm", "models", "hw")
NAMED = {  # what a text value is, where its name does not say it
    "name": "MODEL",
    "models": "MODEL",
    "texts": "TEXT",
    "tensor_split": "SHARES",
    "rpc": "HOST:PORT,...",
    "kv_type": "TYPE",
    "host": "ADDRESS",
    "api_key": "KEY",
    "cors_origin": "ORIGIN",
    "allowed_host": "HOSTNAME",
    "keep_alive": "DURATION",
    "upstream": "NAME=URL",
    "alias": "NAME=MODEL",
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


def fill(text: str, width: int, indent: int = 0) -> list[str]:
    """`text`'s paragraphs (blank-line separated) as lines of at most `width` columns, broken at spaces only."""
    lines: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        lines += [
            *([""] if lines else []),
            *textwrap.wrap(
                " ".join(paragraph.split()), max(width - indent, 20), break_on_hyphens=False, break_long_words=False
            ),
        ]
    return lines


class Formatter(HelpFormatter):
    """click's help layout with `fill` for every paragraph and definition."""

    def write_text(self, text: str) -> None:
        self.write(
            "".join(
                " " * self.current_indent * bool(line) + line + "\n"
                for line in fill(text, self.width, self.current_indent)
            )
        )

    def write_dl(self, rows, col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        first = min(max((len(name) for name, _ in rows), default=0), col_max) + col_spacing
        for name, text in rows:
            self.write(" " * self.current_indent + name)
            lines = fill(text, self.width, self.current_indent + first) or [""]
            lead = (
                " " * (first - len(name))
                if len(name) <= first - col_spacing
                else "\n" + " " * (first + self.current_indent)
            )
            self.write(lead + lines[0] + "\n")
            self.write("".join(" " * (first + self.current_indent) * bool(line) + line + "\n" for line in lines[1:]))


class Context(typer.Context):
    formatter_class = Formatter


class Command(TyperCommand):
    """A command whose usage line and help name values in words."""

    context_class = Context

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.metavar is None and (word := placeholder(param)):
                param.metavar = word

    def collect_usage_pieces(self, ctx: ClickContext) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                word = param.metavar or ""  # __init__ gave every argument its word
                pieces.append(word if param.required else f"[{word}]")
        return pieces

    def format_options(self, ctx: ClickContext, formatter: HelpFormatter) -> None:
        params = self.get_params(ctx)
        arguments = [(p.metavar or "", p.help or "") for p in params if isinstance(p, TyperArgument) and not p.hidden]
        options = [record for p in params if p.param_type_name == "option" and (record := p.get_help_record(ctx))]
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class Group(TyperGroup):
    """The command list with what most people use first, the rest after in the order they were added."""

    context_class = Context

    def list_commands(self, ctx: ClickContext) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda name: EVERYDAY.index(name) if name in EVERYDAY else len(EVERYDAY))
