"""The typer app every command module registers on, and the one place errors become exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable

import typer
from rich.console import Console

from .. import config
from ..errors import R1Error, storage_error

app = typer.Typer(
    name="r1local",
    help="Run DeepSeek-R1 distilled models on this PC.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(error: R1Error) -> None:
    """Print one line that says what went wrong and what to do, then exit with its code."""
    err.print("error:", style="bold red", end=" ")
    err.print(error.message, markup=False)  # messages quote user input: [brackets] are not markup
    if error.hint:
        err.print(f"  {error.hint}", markup=False, style="dim")
    raise typer.Exit(error.exit_code)


def command(*args, **kwargs) -> Callable:
    """Register a command whose R1Errors become one clear line and an exit code (the traceback
    only with R1LOCAL_DEBUG=1), and whose Ctrl-C exits with 130."""

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
            except KeyboardInterrupt:  # Ctrl-C: no traceback, the shell's usual status
                err.print()
                raise typer.Exit(130) from None

        return app.command(*args, **kwargs)(guarded)

    return register


def main() -> None:
    app()
