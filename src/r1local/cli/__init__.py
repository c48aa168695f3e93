"""The r1local command line. Each module below registers its commands on the shared app."""

from . import (
    accelerate,  # noqa: F401  (registers accelerate)
    bench,  # noqa: F401  (registers bench)
    chat,  # noqa: F401  (registers chat)
    embed,  # noqa: F401  (registers embed)
    hw,  # noqa: F401  (registers hw)
    models,  # noqa: F401  (registers pull, list, rm, models)
    presets,  # noqa: F401  (registers create, cp)
    resident,  # noqa: F401  (registers ps, stop)
    run,  # noqa: F401  (registers run)
    serve,  # noqa: F401  (registers serve)
    show,  # noqa: F401  (registers show, inspect)
    worker,  # noqa: F401  (registers worker)
)
from .app import app, main

__all__ = ["app", "main"]
