"""What a serving process imports: llama.cpp's C bindings without llama-cpp-python's high-level
package (numpy and friends, 16 MiB resident), and no Hub client until something is downloaded."""

from __future__ import annotations

import json
import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_the_server_loads_the_bindings_but_not_the_high_level_package_or_the_hub():
    modules = _modules_after("import r1local.cli.app, r1local.server.app, r1local.engine.model")
    assert "llama_cpp.llama_cpp" in modules
    assert not {"llama_cpp.llama", "numpy", "huggingface_hub"} & modules


def test_other_code_in_the_process_still_sees_the_whole_llama_cpp_package():
    modules = _modules_after(
        "from r1local.engine.bindings import C\n"
        "import llama_cpp\n"
        "from llama_cpp import Llama\n"
        "assert Llama.__module__ == 'llama_cpp.llama' and llama_cpp.__version__\n"
        "assert llama_cpp.llama_backend_init is C.llama_backend_init"
    )
    assert "llama_cpp.llama" in modules
