"""Stand-in for NVIDIA's `pynvml` (nvidia-ml-py) with two fixed GPUs; see README.md."""

from __future__ import annotations

import os
from types import SimpleNamespace

GiB = 2**30
MiB = 2**20
nvmlMemory_v2 = 0x02000028

# Per device: total, reserved, used (bytes); free = total - reserved - used, as NVML's v2.
_MEMORY = [(80 * GiB, 512 * MiB, 10 * GiB), (24 * GiB, 256 * MiB, 1 * GiB)]
_UTILIZATION = [(37, 12), (0, 3)]  # (gpu, memory) percent
_initialised = 0


class NVMLError(Exception):
    pass


class NVMLError_DriverNotLoaded(NVMLError):
    pass


class NVMLError_FunctionNotFound(NVMLError):
    pass


class NVMLError_Unknown(NVMLError):
    pass


def nvmlInit() -> None:
    global _initialised
    if os.environ.get("FAKE_NVML_NO_DRIVER"):
        raise NVMLError_DriverNotLoaded("Driver Not Loaded")
    _initialised += 1


def nvmlShutdown() -> None:
    global _initialised
    _check()
    _initialised -= 1


def nvmlDeviceGetCount() -> int:
    _check()
    return len(_MEMORY)


def nvmlDeviceGetHandleByIndex(index: int) -> SimpleNamespace:
    _check()
    return SimpleNamespace(index=index)


def nvmlDeviceGetMemoryInfo(handle: SimpleNamespace, version: int | None = None):
    _check()
    total, reserved, used = _MEMORY[handle.index]
    if not version:  # v1 counts the driver's reserved memory as used
        return SimpleNamespace(total=total, free=total - reserved - used, used=used + reserved)
    if os.environ.get("FAKE_NVML_NO_V2"):
        raise NVMLError_FunctionNotFound("Function Not Found")
    return SimpleNamespace(
        version=version, total=total, reserved=reserved, free=total - reserved - used, used=used
    )


def nvmlDeviceGetUtilizationRates(handle: SimpleNamespace):
    _check()
    _log(f"nv{handle.index}")
    if os.environ.get("FAKE_GPU_CRASH"):
        raise ZeroDivisionError("a bug, not an NVML error")
    gpu, memory = _UTILIZATION[handle.index]
    return SimpleNamespace(gpu=gpu, memory=memory)


def _check() -> None:
    if _initialised <= 0:
        raise NVMLError("Uninitialized")


def _log(device: str) -> None:
    if path := os.environ.get("FAKE_GPU_LOG"):
        with open(path, "a") as log:
            log.write(device + "\n")
    if device in os.environ.get("FAKE_GPU_FAIL", "").split(","):
        raise NVMLError_Unknown("Unknown Error")
