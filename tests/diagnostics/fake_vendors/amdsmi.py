"""Stand-in for AMD's `amdsmi` with two fixed GPUs; see README.md."""

from __future__ import annotations

import os
from enum import IntEnum
from types import SimpleNamespace

# The real amdsmi prints install hints to stdout when imported without ROCm.
print("fake amdsmi: noise printed while importing")

GiB = 2**30
_MEMORY = [(192 * GiB, 3 * GiB), (64 * GiB, 0)]  # total, used (bytes)
_ACTIVITY = [
    {"gfx_activity": 55, "umc_activity": 20, "mm_activity": 0},
    {"gfx_activity": 0, "umc_activity": "N/A", "mm_activity": "N/A"},
]
_initialised = False


class AmdSmiException(Exception):
    pass


class AmdSmiLibraryException(AmdSmiException):
    pass


class AmdSmiInitFlags(IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_GPUS = 1 << 1


class AmdSmiMemoryType(IntEnum):
    VRAM = 0
    VIS_VRAM = 1
    GTT = 2


def amdsmi_init(flag: AmdSmiInitFlags = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
    global _initialised
    print("fake amdsmi: noise printed while initialising")
    if flag != AmdSmiInitFlags.INIT_AMD_GPUS:
        raise AmdSmiLibraryException(f"unexpected init flag {flag!r}")
    _initialised = True


def amdsmi_shut_down() -> None:
    global _initialised
    _check()
    _initialised = False


def amdsmi_get_processor_handles() -> list[SimpleNamespace]:
    _check()
    return [SimpleNamespace(index=i) for i in range(len(_MEMORY))]


def amdsmi_get_gpu_memory_total(handle: SimpleNamespace, mem_type: AmdSmiMemoryType) -> int:
    _check(mem_type)
    return _MEMORY[handle.index][0]


def amdsmi_get_gpu_memory_usage(handle: SimpleNamespace, mem_type: AmdSmiMemoryType) -> int:
    _check(mem_type)
    return _MEMORY[handle.index][1]


def amdsmi_get_gpu_activity(handle: SimpleNamespace) -> dict[str, int | str]:
    _check()
    device = f"amd{handle.index}"
    if path := os.environ.get("FAKE_GPU_LOG"):
        with open(path, "a") as log:
            log.write(device + "\n")
    if device in os.environ.get("FAKE_GPU_FAIL", "").split(","):
        raise AmdSmiLibraryException("AMDSMI_STATUS_UNKNOWN_ERROR")
    return dict(_ACTIVITY[handle.index])


def _check(mem_type: AmdSmiMemoryType | None = None) -> None:
    if not _initialised:
        raise AmdSmiLibraryException("AMDSMI_STATUS_NOT_INIT")
    if mem_type is not None and mem_type != AmdSmiMemoryType.VRAM:
        raise AmdSmiLibraryException(f"unexpected memory type {mem_type!r}")
