"""Several PCs without building anything: endpoints, a worker that is down, and the split plan on
snapshot machines with the workers' memory chosen by the test."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from r1local import catalog
from r1local.cli import app
from r1local.errors import InsufficientMemory, UsageError, WorkerUnreachable
from r1local.hardware import ReplayProbe, detect
from r1local.hardware.model import GiB
from r1local.rpc import parse_endpoints
from r1local.rpc.plan import plan_split
from r1local.rpc.probe import RemoteDevice, WorkerInfo, probe

SNAPSHOTS = Path(__file__).parent / "snapshots"
SEVEN_B = catalog.load().variant("7b", "q4_k_m").shape


def small_pc():
    """The 2-CPU container with 2 GB of RAM: the 7B does not fit in it alone."""
    return detect(ReplayProbe.load(SNAPSHOTS / "container-2cpu-2gb.json"))


def worker(endpoint: str, free_gb: float, bandwidth: float | None = None) -> WorkerInfo:
    free = int(free_gb * GiB)
    return WorkerInfo(endpoint, "7.0.0", [RemoteDevice(0, free, free)], latency_s=0.0004, bandwidth_bps=bandwidth)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def test_endpoints_are_checked():
    assert parse_endpoints("10.0.0.2:50052, 10.0.0.3:50052") == ["10.0.0.2:50052", "10.0.0.3:50052"]
    assert parse_endpoints(None) == []
    for bad in ("10.0.0.2", "10.0.0.2:http", "host:70000", "a:1,a:1"):
        with pytest.raises(UsageError):
            parse_endpoints(bad)


def test_a_worker_that_is_down_is_named():
    endpoint = f"127.0.0.1:{closed_port()}"
    with pytest.raises(WorkerUnreachable) as caught:
        probe(endpoint, timeout=2)
    assert endpoint in caught.value.message and "r1local worker" in caught.value.hint


def test_serve_refuses_in_one_line_when_a_worker_is_down():
    endpoint = f"127.0.0.1:{closed_port()}"
    result = CliRunner().invoke(app, ["serve", "--rpc", endpoint])
    assert result.exit_code == 10
    assert f"RPC worker {endpoint} is not usable: cannot connect" in result.output
    assert "Traceback" not in result.output


def test_the_workers_can_come_from_the_config_file(tmp_path, monkeypatch):
    monkeypatch.setenv("R1LOCAL_HOME", str(tmp_path))
    monkeypatch.delenv("R1LOCAL_RPC", raising=False)
    endpoint = f"127.0.0.1:{closed_port()}"
    (tmp_path / "config.toml").write_text(f'rpc = "{endpoint}"\n')
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 10 and f"RPC worker {endpoint} is not usable" in result.output
    (tmp_path / "config.toml").write_text("rpc = 50052\n")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2 and "rpc must be a string" in result.output and "Traceback" not in result.output


def test_the_plan_uses_the_workers_when_this_pc_is_too_small():
    hw = small_pc()
    split = plan_split(SEVEN_B, hw, [worker("a:1", 3.0), worker("b:1", 3.0)], n_ctx=4096)
    local, a, b = split.shares
    assert local.layers + a.layers + b.layers == SEVEN_B.layers
    assert a.layers > 0 and b.layers > 0 and abs(a.layers - b.layers) <= 1  # equal memory, equal shares
    assert local.layers * SEVEN_B.layer_bytes < hw.memory.available  # what stays here fits here
    assert split.n_gpu_layers == a.layers + b.layers + 1  # llama.cpp's count includes the output head
    assert split.tensor_split[1] > split.tensor_split[0]  # the last device also takes the head
    assert split.endpoints == ["a:1", "b:1"]


def test_the_plan_splits_in_proportion_to_memory():
    hw = replace(small_pc(), memory=replace(small_pc().memory, available=0))  # nothing left here
    split = plan_split(SEVEN_B, hw, [worker("a:1", 2.0), worker("b:1", 6.0)], n_ctx=2048)
    local, a, b = split.shares
    assert local.layers == 0 and a.layers + b.layers == SEVEN_B.layers
    assert abs(b.layers - SEVEN_B.layers * b.budget / (a.budget + b.budget)) < 1  # budgets net of compute buffers
    assert b.layers > 3 * a.layers


def test_gpu_layers_decides_how_many_leave_this_pc():
    hw = replace(small_pc(), memory=replace(small_pc().memory, available=64 * GiB))
    split = plan_split(SEVEN_B, hw, [worker("a:1", 8.0), worker("b:1", 8.0)], n_ctx=2048, gpu_layers=9)
    assert [s.layers for s in split.shares] == [SEVEN_B.layers - 8, 4, 4] and split.n_gpu_layers == 9


def test_a_tensor_split_deals_the_offloaded_layers_as_llama_cpp_does():
    hw = replace(small_pc(), memory=replace(small_pc().memory, available=64 * GiB))
    split = plan_split(
        SEVEN_B, hw, [worker("a:1", 8.0), worker("b:1", 8.0)], n_ctx=2048, gpu_layers=9, tensor_split=[3, 1]
    )
    assert [s.layers for s in split.shares] == [SEVEN_B.layers - 8, 7, 1]  # by memory it would be 4 and 4
    assert split.tensor_split == pytest.approx([0.75, 0.25]) and split.n_gpu_layers == 9
    with pytest.raises(InsufficientMemory, match="--tensor-split puts .* layers on a:1"):
        plan_split(
            SEVEN_B, hw, [worker("a:1", 1.0), worker("b:1", 8.0)], n_ctx=2048, gpu_layers=29, tensor_split=[9, 1]
        )
    with pytest.raises(UsageError, match="1 shares for 2 devices"):
        plan_split(SEVEN_B, hw, [worker("a:1", 8.0), worker("b:1", 8.0)], n_ctx=2048, tensor_split=[1])


def test_a_tensor_split_that_is_not_numbers_is_refused_in_one_line():
    result = CliRunner().invoke(app, ["run", "r1", "hi", "--tensor-split", "3,x"])
    assert result.exit_code == 2 and "--tensor-split '3,x': give numbers separated by commas" in result.output
    assert "Traceback" not in result.output


def test_serve_refuses_a_tensor_split_for_devices_it_does_not_have_before_binding():
    result = CliRunner().invoke(app, ["serve", "--port", "0", "--tensor-split", "1,1"])
    assert result.exit_code == 2 and "--tensor-split gives 2 shares for 0 devices (none)" in result.output
    assert "r1local API on" not in result.output and "Traceback" not in result.output


def test_refused_clearly_when_everything_together_is_too_small():
    with pytest.raises(InsufficientMemory) as caught:
        plan_split(SEVEN_B, small_pc(), [worker("a:1", 0.5), worker("b:1", 0.5)], n_ctx=4096)
    assert "together offer" in caught.value.message


def test_the_speed_estimate_charges_the_network():
    hw = small_pc()
    fast = plan_split(SEVEN_B, hw, [worker("a:1", 3.0, 1e9), worker("b:1", 3.0, 1e9)], n_ctx=2048)
    slow = plan_split(
        SEVEN_B,
        hw,
        [replace(worker("a:1", 3.0, 1e6), latency_s=0.05), replace(worker("b:1", 3.0, 1e6), latency_s=0.05)],
        n_ctx=2048,
    )
    assert slow.decode_tps < fast.decode_tps and "measured" in fast.link
    assert "assumed" in plan_split(SEVEN_B, hw, [worker("a:1", 3.0), worker("b:1", 3.0)], n_ctx=2048).link


def test_each_environment_gets_an_rpc_build_of_its_own(tmp_path, monkeypatch):
    """rpc-server is linked to one environment's libggml by path: the same library elsewhere is
    another build, so deleting the first environment cannot break the second's workers."""
    from r1local.rpc import build

    folders = set()
    for env in ("first", "second"):
        (tmp_path / env).mkdir()
        (tmp_path / env / "libggml-base.so").write_bytes(b"the same bytes")
        monkeypatch.setattr(build, "llama_lib_dir", lambda env=env: tmp_path / env)
        folders.add(build.artefact_dir())
    assert len(folders) == 2
