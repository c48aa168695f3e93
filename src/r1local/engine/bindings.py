"""llama.cpp's C API through llama-cpp-python's ctypes bindings, without its high-level package.

`import llama_cpp` runs the package's __init__, which also imports the `Llama` class and with it
numpy, its chat formats and more: about 16 MiB of resident memory in every process that only drives
the C API, which on a small model is 5% of the server's footprint. Here the package is registered
without running that __init__; the first time anything asks it for a name the bindings lack
(`from llama_cpp import Llama`), the real __init__ runs, so other users in the process see the
package exactly as usual.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any


def _register_package() -> None:
    if "llama_cpp" not in sys.modules:
        spec = importlib.util.find_spec("llama_cpp")
        if spec is None or spec.loader is None:
            raise ImportError("llama-cpp-python is not installed")
        package = importlib.util.module_from_spec(spec)
        loader = spec.loader

        def complete(name: str) -> object:
            package.__dict__.pop("__getattr__", None)
            loader.exec_module(package)
            return getattr(package, name)

        package.__getattr__ = complete  # type: ignore[method-assign]  # PEP 562 hook
        sys.modules["llama_cpp"] = package


def submodule(name: str) -> ModuleType:
    """One of llama_cpp's modules (such as "llama_grammar") without the high-level package."""
    _register_package()
    return importlib.import_module(f"llama_cpp.{name}")


class _LoadedOnFirstUse:
    """llama_cpp.llama_cpp, imported the first time a name is read from it: importing r1local needs no
    llama-cpp-python, so `r1local accelerate --sdist` can build the first one on a machine with none."""

    def __getattr__(self, name: str) -> Any:
        value = getattr(submodule("llama_cpp"), name)
        setattr(self, name, value)  # later reads are plain attribute lookups
        return value


C: Any = _LoadedOnFirstUse()
