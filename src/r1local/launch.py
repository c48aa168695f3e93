"""The `r1local` command: first a process with huge pages where the platform has them, then the CLI."""

from __future__ import annotations

from .hugepages import reexec_with_huge_pages


def main() -> None:
    reexec_with_huge_pages()  # before the CLI's imports, which exec would repeat
    from .cli import main as cli

    cli()
