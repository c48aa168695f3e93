"""README's first install command installs the runtime only: the test extra (pytest, Playwright,
OpenVINO, LangChain, schemathesis, matplotlib: 946 MB against 239 MB) is for the tests alone."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).parents[1]


def test_the_first_install_command_takes_no_extra():
    commands = re.findall(r"pip install [^`\n&]*", (ROOT / "README.md").read_text())
    assert commands, "README shows no pip install command"
    first = commands[0].split()
    assert "-e" in first and "." in first or "r1local" in first, commands[0]
    assert not any("[" in word for word in first), f"the first install takes an extra: {commands[0]}"


def test_the_runtime_dependencies_hold_no_test_tool():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    test_only = {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower() for d in project["optional-dependencies"]["test"]}
    assert not runtime & {
        "pytest",
        "playwright",
        "openvino-genai",
        "langchain-openai",
        "schemathesis",
        "matplotlib",
        "pexpect",
        "openai",
        "ollama",
    }
    assert {"pytest", "playwright"} <= test_only
