"""Claude Code (npm's @anthropic-ai/claude-code) in print mode against r1local's Messages API: its
~20,000-token prompt of system text and two dozen tools, streamed, end to end. The tiny model never
stops by itself, so CLAUDE_CODE_MAX_OUTPUT_TOKENS bounds each answer and Claude Code ends with its
own message about that maximum, which proves every round trip completed. Slow: run with -m slow
(skipped where `claude` is not installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace

import httpx
import pytest
from serving import TEST_SETTINGS, isolated_store, running_server

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("claude") is None, reason="npm install -g @anthropic-ai/claude-code")
def test_claude_code_prints_its_answer_through_r1local(tiny_model_long, tmp_path):
    settings = replace(TEST_SETTINGS, models=(str(tiny_model_long),), ctx=32768, parallel=1, api_key="sesame")
    with isolated_store(tmp_path), running_server(settings) as url:
        model = tiny_model_long.stem
        env = {
            **os.environ,
            "HOME": str(tmp_path),
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_API_KEY": "sesame",
            "ANTHROPIC_MODEL": model,
            "ANTHROPIC_SMALL_FAST_MODEL": model,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
            "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "64",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        done = subprocess.run(
            ["claude", "-p", "Say hello"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        said = done.stdout + done.stderr
        assert "exceeded the 64 output token maximum" in said, said
        metrics = httpx.get(f"{url}/metrics", headers={"X-Api-Key": "sesame"}).text
        answered = [
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("r1local_requests_total{")
            and 'api="anthropic"' in line
            and 'finish_reason="length"' in line
        ]
        assert answered and answered[0] >= 1, metrics
