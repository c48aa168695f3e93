#!/usr/bin/env python3
"""Check that a wheel built from this tree serves a whole chat page: build the wheel, check it holds
every file of src/r1local/webui/, install it with its dependencies into a fresh virtual environment
(not editable, no PYTHONPATH), start `r1local serve` from there, and load the page in Chromium: every
file of the page must come back 200 and identical to the tree's, the page must load and render math
(fetching KaTeX's fonts) with no failed request, no console error and no page error.

Run it with a Python that has Playwright (the test extra): python scripts/check_wheel_page.py
Exits 0 and prints "ok" with the time taken, or 1 with what is missing."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = Path("src/r1local/webui")


def run(*command: str | Path) -> None:
    """Run a build or install step quietly; show its output only when it fails."""
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"failed ({done.returncode}): {' '.join(map(str, command))}")


def tree_files() -> list[Path]:
    """The files the repository holds (tracked, or new and not ignored), as this tree has them."""
    listing = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return [Path(name) for name in listing.split("\0") if name and (ROOT / name).is_file()]


def build_wheel(work: Path) -> Path:
    """Build from a copy of the tree, so the build leaves nothing behind in it."""
    source = work / "source"
    for name in tree_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", work / "dist", source)
    return next((work / "dist").glob("r1local-*.whl"))


def page_files() -> dict[str, bytes]:
    """Each file of the chat page by its path under webui/, with its bytes."""
    return {
        name.relative_to(PAGE).as_posix(): (ROOT / name).read_bytes() for name in tree_files() if PAGE in name.parents
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"r1local serve from the wheel exited with {server.returncode}")
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise SystemExit("r1local serve from the wheel did not answer /health within a minute")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def check_in_browser(url: str) -> list[str]:
    """Problems seen by Chromium loading the page and rendering math (which fetches the fonts)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        raise SystemExit("no Chromium (Debian: apt-get install chromium)")
    problems: list[str] = []
    fetched: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("response", lambda r: fetched.append(r.url) if r.ok else problems.append(f"{r.status} {r.url}"))
        page.on("requestfailed", lambda r: problems.append(f"failed {r.url}: {r.failure}"))
        page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.goto(url, wait_until="load")
        page.wait_for_selector("#empty:not([hidden])")  # the page's modules ran
        page.evaluate("""async () => { const { renderMarkdown } = await import('/ui/markdown.js');
            const box = document.createElement('div');
            box.append(renderMarkdown('$$\\\\mathbb{R} \\\\ni \\\\mathcal{x}^2 \\\\cdot \\\\mathfrak{g}$$'));
            document.body.append(box); await document.fonts.ready; }""")
        page.wait_for_timeout(300)
        browser.close()
    if not any("/ui/vendor/fonts/" in u for u in fetched):
        problems.append("the math rendered without fetching KaTeX's fonts")
    return problems


def main() -> int:
    started = time.monotonic()
    expected = page_files()
    with tempfile.TemporaryDirectory(prefix="r1local-wheel-") as tmp:
        work = Path(tmp)
        wheel = build_wheel(work)
        with zipfile.ZipFile(wheel) as archive:
            shipped = {n.removeprefix("r1local/webui/") for n in archive.namelist() if n.startswith("r1local/webui/")}
        missing = sorted(set(expected) - shipped)
        if missing:
            print(f"{wheel.name} lacks {len(missing)} file(s) of the chat page: {', '.join(missing[:8])}")
            return 1

        run(sys.executable, "-m", "venv", work / "venv")
        python = work / "venv" / "bin" / "python"
        run(python, "-m", "pip", "install", "--quiet", wheel)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "R1LOCAL_API_KEY")}
        env.update(R1LOCAL_HOME=str(work / "home"), HF_HUB_CACHE=str(work / "hf-cache"))
        where = subprocess.run(
            [python, "-c", "import r1local; print(r1local.__file__)"],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if not where.startswith(str(work / "venv")):
            print(f"r1local was imported from {where}, not from the wheel")
            return 1

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [work / "venv" / "bin" / "r1local", "serve", "--port", str(port)],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until_up(url, server)
            problems = [
                f"/ui/{name} differs from the tree's"
                for name, data in expected.items()
                if hashlib.sha256(fetch(f"{url}/ui/{name}")).digest() != hashlib.sha256(data).digest()
            ]
            problems += check_in_browser(url)
        except urllib.error.HTTPError as error:
            problems = [f"{error.code} {error.url}"]
        finally:
            server.terminate()
            server.wait(timeout=30)
    if problems:
        print("\n".join(problems))
        return 1
    print(f"ok: {wheel.name} serves all {len(expected)} files of the chat page ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
