"""The one PowerShell/CIM query detection makes on Windows: CPU, video controllers, their real
memory size from the driver's registry key, and compute-accelerator (NPU) devices."""

from __future__ import annotations

import json

from .probe import Probe

WINDOWS_SCRIPT = (
    "$ErrorActionPreference='SilentlyContinue';$o=[ordered]@{};"
    "$o.cpu=@(Get-CimInstance Win32_Processor|Select-Object Name,NumberOfCores,NumberOfLogicalProcessors);"
    "$o.gpus=@(Get-CimInstance Win32_VideoController|Select-Object Name,AdapterRAM,DriverVersion,PNPDeviceID);"
    "$o.gpu_memory=@(Get-ItemProperty 'HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Class\\"
    "{4d36e968-e325-11ce-bfc1-08002be10318}\\0*'|Select-Object DriverDesc,'HardwareInformation.qwMemorySize');"
    "$o.npus=@(Get-PnpDevice -Class ComputeAccelerator -PresentOnly|Select-Object FriendlyName,InstanceId,Manufacturer);"
    "$o|ConvertTo-Json -Depth 3 -Compress"
)


def query(probe: Probe) -> dict:
    """The parsed JSON answer, {} when PowerShell is missing or failed."""
    res = probe.run(
        "powershell-cim", ["powershell", "-NoProfile", "-NonInteractive", "-Command", WINDOWS_SCRIPT], timeout=6
    )
    try:
        return json.loads(res.stdout) if res and res.stdout.strip() else {}
    except ValueError:
        return {}
