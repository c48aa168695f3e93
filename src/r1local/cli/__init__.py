"""The r1local command line. Each module below registers its commands on the shared app."""

from . import accelerate  # noqa: F401  (registers accelerate)
from . import bench  # noqa: F401  (registers bench)
from . import chat  # noqa: F401  (registers chat)
from . import embed  # noqa: F401  (registers embed)
from . import hw  # noqa: F401  (registers hw)
from . import models  # noqa: F401  (registers pull, list, rm, models)
from . import presets  # noqa: F401  (registers create, cp)
from . import resident  # noqa: F401  (registers ps, stop)
from . import run  # noqa: F401  (registers run)
from . import serve  # noqa: F401  (registers serve)
from . import show  # noqa: F401  (registers show, inspect)
from . import worker  # noqa: F401  (registers worker)
from .app import app, main

__all__ = ["app", "main"]
