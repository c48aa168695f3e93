"""The r1local command line. Each module below registers its commands on the shared app."""

from . import run  # noqa: F401  (registers run, chat, inspect)
from .app import app, main

__all__ = ["app", "main"]
