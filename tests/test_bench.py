"""`r1local bench` on a real (tiny) GGUF through the real engine, and the comparison report's ratios."""

from __future__ import annotations

import json

import psutil
import pytest
from typer.testing import CliRunner

from conftest import _load_script
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
            serve.append(dict(peer=peer, clients=clients, tokens_per_s=tps, ttft_p50_s=1.0, ttft_p95_s=2.0,
                              peak_rss_bytes=100 * 2**20, short_requests=0))
    return {"file": "m.gguf", "size_bytes": 2**30, "serve": serve,
            "r1local_bench": {"pp512": 95.0, "tg128": 20.0}, "llama_bench": {"pp512": 100.0, "tg128": 20.0}}


def test_report_ratios_and_verdicts(report_module, tmp_path):
    entry = _entry()
    entry["ratios"] = r = report_module.ratios(entry)
    assert r["prefill_vs_llama_bench"] == pytest.approx(0.95)
    assert r["decode_vs_llama_bench"] == pytest.approx(1.0)
    assert r["tokens_per_s_vs_llama_server"] == pytest.approx({1: 1.0, 4: 1.2, 8: 40 / 44})
    assert r["tokens_per_s_vs_llama_cpp_python"][8] == pytest.approx(4.0)
    results = {"machine": dict(cores=2, cpu="x86_64", threads=2, llama_cpp_python="0.3.36"),
               "settings": dict(prompt_tokens=128, max_tokens=64), "models": [entry]}
    table = report_module.markdown(results)
    assert "| 8 | llama-server | 44.0 |" in table
    assert "0.91 (**missed**)" in table  # 8 clients vs llama-server
    assert "1.20 (met)" in table
    report_module.plot(results, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
