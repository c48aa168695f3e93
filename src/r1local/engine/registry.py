"""Which engine loads a model, and the one `load` every caller uses.

A model name may choose the engine (`r1:7b@openvino`, see names.py); without it an OpenVINO IR
folder (r1:1.5b-npu) loads on OpenVINO and a GGUF on llama.cpp.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .base import Engine

def engine_for(path: Path, engine: str | None) -> str:
    return engine or ("openvino" if is_openvino_folder(path) else "llama.cpp")


def is_openvino_folder(path: Path) -> bool:
    """An OpenVINO IR folder, or its openvino_model.xml (what the store finds for a pulled one)."""
    return path.is_dir() or path.suffix == ".xml"


def load(path: str | Path, *, engine: str | None = None, on_compile: Callable | None = None,
         **options: Any) -> Engine:
    """Load `path` on the named engine (None: the one its format needs). `on_compile` is told
    before OpenVINO compiles a model for the first time (minutes on an NPU)."""
    path = Path(path).expanduser()
    if engine_for(path, engine) == "openvino":
        from .openvino import OpenVINOModel  # the optional extra, imported only when asked for

        return OpenVINOModel.load(path, on_compile=on_compile, **options)
    from .model import Model

    return Model.load(path, **options)
