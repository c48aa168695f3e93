"""`r1local bench` on a real (tiny) GGUF through the real engine, and the comparison report's ratios."""

from __future__ import annotations

import json
import subprocess
import sys

import psutil
import pytest
from conftest import ROOT, _load_script
from typer.testing import CliRunner

from r1local.cli import app

runner = CliRunner()


def _bench(model, *args):
    return runner.invoke(app, ["bench", str(model), "--pp", "32", "--tg", "8", "--threads", "2", *args])


def test_bench_json_has_sane_positive_figures(tiny_model):
    result = _bench(tiny_model, "--repetitions", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["pp_tokens"], report["tg_tokens"], report["repetitions"]) == (32, 8, 2)
    assert report["threads"] == 2
    assert report["file_type"] == "F16"
    for key in ("pp_tokens_per_s", "tg_tokens_per_s", "ttft_s"):
        spread = report[key]
        assert len(spread["runs"]) == 2
        assert all(run > 0 for run in spread["runs"])
        assert spread["min"] <= spread["median"] <= spread["max"]
        assert spread["stdev"] >= 0
    # a 32-token prompt cannot take longer to first token than the whole prefill measured
    assert report["ttft_s"]["max"] <= 32 / report["pp_tokens_per_s"]["min"] * 1.01
    # the high-water mark (the bench ran in this process) is in bytes and not below today's level
    assert report["peak_rss_bytes"] >= psutil.Process().memory_info().rss


def test_bench_table(tiny_model):
    result = _bench(tiny_model, "-r", "1")
    assert result.exit_code == 0, result.output
    for label in ("pp32", "tg8", "time to first token", "peak RSS", "tok/s"):
        assert label in result.stdout
    assert "no spread" in result.stderr  # one repetition is flagged


def test_bench_missing_model_is_one_clear_error(tmp_path):
    result = runner.invoke(app, ["bench", str(tmp_path / "nope.gguf")])
    assert result.exit_code == 3
    assert "No such file" in result.stderr


@pytest.fixture(scope="module")
def report_module():
    return _load_script("bench_report")


def _entry():
    serve = []
    for clients, (ours, server, lcp) in {1: (10, 10, 10), 4: (30, 25, 10), 8: (40, 44, 10)}.items():
        for peer, tps in (("r1local", ours), ("llama-server", server), ("llama-cpp-python", lcp)):
            serve.append(
                dict(
                    peer=peer,
                    clients=clients,
                    tokens_per_s=tps,
                    ttft_p50_s=1.0,
                    ttft_p95_s=2.0,
                    peak_rss_bytes=100 * 2**20,
                    short_requests=0,
                )
            )
    return {
        "file": "m.gguf",
        "size_bytes": 2**30,
        "serve": serve,
        "r1local_bench": {"pp512": 95.0, "tg128": 20.0},
        "llama_bench": {"pp512": 100.0, "tg128": 20.0},
    }


def test_report_ratios_and_verdicts(report_module, tmp_path):
    entry = _entry()
    entry["ratios"] = r = report_module.ratios(entry)
    assert r["prefill_vs_llama_bench"] == pytest.approx(0.95)
    assert r["decode_vs_llama_bench"] == pytest.approx(1.0)
    assert r["tokens_per_s_vs_llama_server"] == pytest.approx({1: 1.0, 4: 1.2, 8: 40 / 44})
    assert r["tokens_per_s_vs_llama_cpp_python"][8] == pytest.approx(4.0)
    assert r["llama_server_vs_llama_cpp_python"] == pytest.approx({1: 1.0, 4: 2.5, 8: 4.4})
    results = {
        "machine": dict(cores=2, cpu="x86_64", threads=2, llama_cpp_python="0.3.36"),
        "settings": dict(prompt_tokens=128, max_tokens=64),
        "models": [entry],
    }
    table = report_module.markdown(results)
    assert "| 8 | llama-server | 44.0 |" in table
    assert "0.91 (**missed**)" in table  # 8 clients vs llama-server
    assert "1.20 (met)" in table
    assert "| *for reference: llama-server / llama-cpp-python* | 1.00 | 2.50 | 4.40 |" in table
    report_module.plot(results, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_side_by_side_script_runs_end_to_end(tiny_model, tmp_path):
    """scripts/bench_compare.py against llama-cpp-python's server on the tiny model: real servers,
    real streaming clients, then the JSON, table and plot (the llama.cpp peers need a 15-minute build)."""
    pytest.importorskip("sse_starlette", reason="llama-cpp-python's server: pip install -e '.[bench]'")
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "bench_compare.py"),
        "--models",
        str(tiny_model),
        "--skip-single",
        "--peers",
        "r1local,llama-cpp-python",
        "--threads",
        "2",
        "--requests",
        "2",
        "--serve-rounds",
        "2",
        "--prompt-tokens",
        "8",
        "--max-tokens",
        "8",
        "--quiet-wait",
        "0",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "benchmarks.json").read_text())
    rows = results["models"][0]["serve"]
    assert sorted((r["peer"], r["clients"]) for r in rows) == sorted(
        (peer, n) for peer in ("r1local", "llama-cpp-python") for n in (1, 4, 8)
    )
    assert all(r["tokens_per_s"] > 0 and r["peak_rss_bytes"] > 0 for r in rows)
    assert all(
        len(r["rounds"]) == 2
        and min(x["tokens_per_s"] for x in r["rounds"])
        <= r["tokens_per_s"]
        <= max(x["tokens_per_s"] for x in r["rounds"])
        for r in rows
    )
    assert set(results["models"][0]["ratios"]["tokens_per_s_vs_llama_cpp_python"]) == {"1", "4", "8"}  # JSON keys
    assert "| 8 | r1local |" in (tmp_path / "benchmarks.md").read_text()
    assert (tmp_path / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_of_an_openvino_model_is_one_clear_error(tiny_model, tmp_path, monkeypatch):
    # it loaded the model, then failed with an AttributeError: OpenVINO's engine has no tokenize()
    pytest.importorskip("openvino_genai")
    monkeypatch.setenv("R1LOCAL_OPENVINO_CACHE", str(ROOT / "models" / "openvino-cache"))
    result = _bench(f"{tiny_model}@openvino", "--repetitions", "1")
    assert result.exit_code == 2, result.output
    assert "bench measures llama.cpp" in result.output and "Traceback" not in result.output
