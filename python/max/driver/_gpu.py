"""Finding accelerators through the vendors' driver libraries, loaded with ``ctypes``.

Nothing here may raise when a library is missing or fails: no library, no accelerator.
NVIDIA GPUs come from the CUDA driver (``libcuda.so.1``), AMD GPUs from HIP
(``libamdhip64.so``). The result of each probe is cached: devices do not come and go.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
from dataclasses import dataclass
from typing import Any

#: Path of the vendor driver library to use instead of the system's (tests: a fake driver).
DRIVER_LIBRARY_ENV = "MAX_GPU_DRIVER_LIBRARY"
_override: list[str | None] = [None]  # set by use_driver_library
#: Where Linux describes the AMD GPUs (a node's ``gfx_target_version`` gives its arch).
KFD_TOPOLOGY = "/sys/class/kfd/kfd/topology/nodes"

# CUdevice_attribute values (cuda.h).
_CU_COMPUTE_CAPABILITY_MAJOR = 75
_CU_COMPUTE_CAPABILITY_MINOR = 76


@dataclass(frozen=True)
class Backend:
    """One vendor's driver library and the number of devices it sees."""

    api: str  # "cuda" or "hip", as Device.api spells it
    lib: ctypes.CDLL
    count: int
    path: str  # the library's name or path, as dlopen was given it


def _library() -> str | None:
    return _override[0] or os.environ.get(DRIVER_LIBRARY_ENV) or None


def _load(*names: str) -> tuple[ctypes.CDLL, str] | tuple[None, None]:
    chosen = _library()
    for name in (chosen,) if chosen else names:
        try:
            return ctypes.CDLL(name), name
        except OSError:
            continue
    return None, None


def _cuda() -> Backend | None:
    lib, path = _load("libcuda.so.1", "libcuda.so")
    if lib is None or not hasattr(lib, "cuInit"):
        return None
    count = ctypes.c_int(0)
    try:
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return None
    except AttributeError:  # not a CUDA driver after all
        return None
    return Backend("cuda", lib, count.value, path) if count.value > 0 else None


def _hip() -> Backend | None:
    lib, path = _load("libamdhip64.so", "libamdhip64.so.6", "libamdhip64.so.5")
    if lib is None or not hasattr(lib, "hipInit"):
        return None
    if lib.hipInit(0) != 0:
        return None
    count = ctypes.c_int(0)
    try:
        if lib.hipGetDeviceCount(ctypes.byref(count)) != 0:
            return None
    except AttributeError:
        return None
    return Backend("hip", lib, count.value, path) if count.value > 0 else None


@functools.cache
def backend() -> Backend | None:
    """The first vendor with at least one device: NVIDIA, then AMD; ``None`` without any."""
    for probe in (_cuda, _hip):
        try:
            found = probe()
        except Exception:  # a broken driver install must not break `import max`
            found = None
        if found is not None:
            return found
    return None


@functools.cache
def runtime() -> Any:
    """The GPU runtime (``max.runtime.gpu.Runtime``) on the backend's library.

    Raises:
        RuntimeError: if there is no accelerator.
        GpuError: if the runtime shim cannot be built or the library not opened.
    """
    found = backend()
    if found is None:
        raise RuntimeError("no accelerator found: accelerator_count() is 0")
    from max.runtime.gpu import Runtime

    return Runtime(found.path, found.api)


def use_driver_library(path: str | None) -> None:
    """Uses the vendor driver library at ``path`` (``None``: the system's) from now on.

    For tests (a fake driver): forgets the backend, its devices and their streams, so that
    ``Accelerator()`` finds the new library's devices. Tensors on the old devices must be gone.
    """
    from max.driver import device

    for accelerator in device.Accelerator._instances.values():
        stream = accelerator._stream
        if stream is not None and stream._handle:
            try:
                runtime().stream_destroy(accelerator.id, stream._handle)
            except Exception:  # noqa: BLE001 (a library that is already unusable)
                pass
            stream._handle = 0
    device.DeviceStream._of_device.clear()
    _override[0] = path
    for cached in (backend, runtime, architecture_name):
        cached.cache_clear()
    device.Accelerator._instances.clear()


def device_count() -> int:
    """Number of accelerators the first vendor with devices reports (0 without any)."""
    found = backend()
    return 0 if found is None else found.count


@functools.cache
def architecture_name(ordinal: int) -> str:
    """``sm_90`` for an NVIDIA GPU, ``gfx942`` for an AMD GPU, ``""`` when it cannot tell."""
    found = backend()
    if found is None:
        return ""
    if found.api == "cuda":
        device, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
        lib = found.lib
        if lib.cuDeviceGet(ctypes.byref(device), ordinal) != 0:
            return ""
        lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_COMPUTE_CAPABILITY_MAJOR, device)
        lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_COMPUTE_CAPABILITY_MINOR, device)
        return f"sm_{major.value}{minor.value}"
    return _amd_architecture_name(ordinal)


def _amd_architecture_name(ordinal: int) -> str:
    """Reads the gfx target of the ordinal-th GPU from the KFD topology (Linux)."""
    versions = []
    for path in sorted(glob.glob(f"{KFD_TOPOLOGY}/*/properties")):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "gfx_target_version" and int(value) > 0:
                        versions.append(int(value))
        except (OSError, ValueError):
            continue
    if ordinal >= len(versions):
        return ""
    # gfx_target_version is major*10000 + minor*100 + stepping, e.g. 90010 -> gfx90a.
    major, rest = divmod(versions[ordinal], 10000)
    minor, stepping = divmod(rest, 100)
    return f"gfx{major}{minor:x}{stepping:x}"


def can_access_peer(ordinal: int, peer: int) -> bool:
    """Whether GPU ``ordinal`` can read GPU ``peer``'s memory directly."""
    found = backend()
    if found is None:
        return False
    result = ctypes.c_int(0)
    try:
        if found.api == "cuda":
            a, b = ctypes.c_int(0), ctypes.c_int(0)
            if found.lib.cuDeviceGet(ctypes.byref(a), ordinal) or found.lib.cuDeviceGet(
                ctypes.byref(b), peer
            ):
                return False
            status = found.lib.cuDeviceCanAccessPeer(ctypes.byref(result), a, b)
        else:
            status = found.lib.hipDeviceCanAccessPeer(ctypes.byref(result), ordinal, peer)
    except AttributeError:
        return False
    return status == 0 and result.value == 1
