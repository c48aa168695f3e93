"""The typer app every command module registers on, and the one place errors become exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable

import typer
from rich.console import Console
from rich.text import Text

from .. import __version__, config
from ..errors import INTERRUPTED_EXIT, R1Error, storage_error
from .help import Command, Group
from .terminal import wrap_words

app = typer.Typer(
    name="r1local",
    cls=Group,
    help="Run DeepSeek-R1 distilled models on this PC.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help as click writes it, values named in words (help.py)
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Terminal(Console):
    """rich's console, wrapping prose between words on a terminal, each wrapped line indented as its
    first, never inside a word (a URL longer than the line stays one piece for the terminal to fold
    and recognise); in a pipe, lines go out as written. Tables lay out as rich does."""

    def print(self, *objects, soft_wrap: bool | None = None, **kwargs) -> None:
        if soft_wrap is None and self.is_terminal and objects and all(isinstance(o, (str, Text)) for o in objects):
            markup, emoji, highlight = kwargs.get("markup"), kwargs.get("emoji"), kwargs.get("highlight")
            parts = [
                self.render_str(o, markup=markup, emoji=emoji, highlight=highlight) if isinstance(o, str) else o
                for o in objects
            ]
            objects = (wrap_words(Text(kwargs.pop("sep", " ")).join(parts), self.width),)
        super().print(*objects, soft_wrap=True if soft_wrap is None else soft_wrap, **kwargs)


out = Terminal(highlight=False)
err = Terminal(stderr=True, highlight=False)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"r1local {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run DeepSeek-R1 distilled models on this PC."""


def fail(error: R1Error) -> None:
    """Print one line that says what went wrong and what to do, then exit with its code."""
    err.print("error:", style="bold red", end=" ")
    err.print(error.message, markup=False)  # messages quote user input: [brackets] are not markup
    if error.hint:
        err.print(f"  {error.hint}", markup=False, style="dim")
    raise typer.Exit(error.exit_code)


def command(*args, **kwargs) -> Callable:
    """Register a command whose R1Errors become one clear line and an exit code
    (the traceback only with R1LOCAL_DEBUG=1); Ctrl-C exits quietly with 130, as shells expect."""

    def register(func: Callable) -> Callable:
        @functools.wraps(func)
        def guarded(*a, **kw):
            try:
                return func(*a, **kw)
            except R1Error as error:
                if config.debug():
                    raise
                fail(error)
            except OSError as error:  # the disk or a folder refused: one line, as for R1Errors
                if config.debug() or error.errno is None:
                    raise
                fail(storage_error(error))
            except KeyboardInterrupt:
                if config.debug():
                    raise
                err.print()
                raise typer.Exit(INTERRUPTED_EXIT) from None

        return app.command(*args, cls=Command, **kwargs)(guarded)

    return register


def alias(name: str, of: Callable, help: str) -> None:
    """Register `name` as a second name of an already registered command."""
    app.command(name=name, help=help, cls=Command)(of)


def main() -> None:
    app()
