"""What the OpenVINO engine could use here: OpenVINO's own device list, read through the probe so
a snapshot replays it. None means the optional extra is not installed."""

from __future__ import annotations

from .model import GPU, NPU, OpenVINODevice, OpenVINOInfo, Verdict
from .probe import Probe

USED = "used by the OpenVINO engine"
NOT_USED = "not usable by the OpenVINO engine"
# NPU vendors OpenVINO does not drive, and the OpenAI-compatible runtime to front instead
UPSTREAM_ROUTES = {
    "amd": ("AMD's Lemonade server (FastFlowLM on the XDNA NPU)", "lemonade=http://127.0.0.1:8000/api/v1"),
    "qualcomm": ("Microsoft Foundry Local (the Hexagon NPU)", "foundry=http://127.0.0.1:5273/v1"),
}


def _query() -> dict:
    import openvino
    import openvino_genai

    core = openvino.Core()
    devices = []
    for name in core.available_devices:
        try:
            full = str(core.get_property(name, "FULL_DEVICE_NAME"))
        except RuntimeError:
            full = name
        devices.append({"name": name, "full_name": full})
    return {"version": openvino_genai.__version__, "devices": devices}


def detect_openvino(probe: Probe) -> OpenVINOInfo | None:
    raw = probe.call("openvino.devices", _query)
    if not raw:
        return None
    return OpenVINOInfo(raw.get("version"), [OpenVINODevice(**d) for d in raw.get("devices") or []])


def _device(info: OpenVINOInfo, kind: str) -> OpenVINODevice | None:
    return next((d for d in info.devices if d.name.split(".")[0] == kind), None)


def openvino_verdicts(info: OpenVINOInfo | None, gpus: list[GPU], npus: list[NPU], install: str) -> list[Verdict]:
    """Per Intel GPU and NPU, and the CPU: can the OpenVINO engine run a model there."""
    devices = [("CPU", "cpu", "CPU")] + [(g.name, "gpu", "GPU") for g in gpus if g.vendor == "intel"]
    devices += [(n.name, "npu", "NPU") for n in npus if n.vendor == "intel"]
    if info is None and len(devices) == 1:
        return []  # no Intel accelerator: nothing the extra would add over llama.cpp on this CPU
    verdicts = []
    for name, kind, ov_kind in devices:
        if info is None:
            verdicts.append(Verdict(name, kind, False, NOT_USED, "the OpenVINO engine is not installed", install))
        elif found := _device(info, ov_kind):
            version = (info.version or "").split("-")[0]
            verdicts.append(
                Verdict(name, kind, True, USED, f"OpenVINO {version} lists it as {found.name} ({found.full_name})")
            )
        else:
            verdicts.append(
                Verdict(
                    name,
                    kind,
                    False,
                    NOT_USED,
                    f"OpenVINO does not list a {ov_kind} device",
                    "install Intel's NPU driver (intel_vpu + Level Zero)"
                    if kind == "npu"
                    else "install Intel's GPU compute runtime (OpenCL / Level Zero)",
                )
            )
    return verdicts


def upstream_step(npu: NPU) -> str | None:
    """For an NPU only its vendor's runtime drives: the route through r1local's upstream proxy."""
    route = UPSTREAM_ROUTES.get(npu.vendor)
    if route is None:
        return None
    runtime, example = route
    return f"run {runtime}, then: r1local serve --upstream {example}"
