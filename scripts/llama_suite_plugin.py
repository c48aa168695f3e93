"""Copied into a copy of llama.cpp's server tests by scripts/llama_server_suite.py.

Imported by the tests' utils.py, it makes every preset serve a local GGUF file (SUITE_MODEL, or
SUITE_EMBED_MODEL for embedding presets) instead of a Hugging Face download, and starts the server
named by SUITE_SERVER_BIN. Run as a script it is that binary for r1local: it reads the llama-server
command line the tests build and starts `r1local serve` with the flags r1local has; the others
(sampling defaults, batch sizes, --no-slots ...) do not change what these tests check of r1local.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def install(server_process: type, server_preset: type) -> None:
    """Point utils.ServerProcess at the local model and the chosen server binary."""
    original_start = server_process.start

    def start(self, *args, **kwargs):
        self.model_hf_repo = self.model_hf_file = self.model_url = None
        embedding = self.server_embeddings or self.pooling is not None
        self.model_file = os.environ["SUITE_EMBED_MODEL" if embedding else "SUITE_MODEL"]
        self.server_path = os.environ["SUITE_SERVER_BIN"]
        return original_start(self, *args, **kwargs)

    server_process.start = start
    server_preset.load_all = staticmethod(lambda: None)  # nothing to download


def r1local_command(argv: list[str]) -> list[str]:
    """The `r1local serve` command line equivalent to a llama-server one."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--model", "-m", required=True)
    parser.add_argument("--port", default="8080")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ctx-size", "-c")
    parser.add_argument("--parallel", "-np")
    parser.add_argument("--threads", "-t")
    parser.add_argument("--alias", "-a")
    parser.add_argument("--api-key")
    parser.add_argument("--pooling")
    parser.add_argument("--n-predict", "-n")
    parser.add_argument("--seed")
    parser.add_argument("--temp")
    known, _ignored = parser.parse_known_args(argv)
    command = [
        sys.executable,
        "-m",
        "r1local",
        "serve",
        known.model,
        "--port",
        known.port,
        "--host",
        known.host,
        "--no-ui",
    ]
    if known.ctx_size:
        command += ["--ctx", known.ctx_size]
    if known.parallel:
        command += ["--parallel", known.parallel]
    if known.threads:
        command += ["--threads", known.threads]
    if known.alias:
        command += ["--alias", f"{known.alias}={Path(known.model).stem}"]
    if known.api_key:
        command += ["--api-key", known.api_key]
    if known.pooling:
        command += ["--pooling", known.pooling]
    if known.n_predict and int(known.n_predict) > 0:  # llama-server's -1: no limit, r1local's default
        command += ["--n-predict", known.n_predict]
    if known.seed and int(known.seed) >= 0:  # llama-server's -1: a random seed, r1local's default
        command += ["--seed", known.seed]
    if known.temp:
        command += ["--temperature", known.temp]
    return command


if __name__ == "__main__":
    command = r1local_command(sys.argv[1:])
    os.execv(command[0], command)
