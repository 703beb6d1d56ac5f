"""NVIDIA GPUs through NVML (the ``pynvml`` module of the ``nvidia-ml-py`` package)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ._stats import GPUStats, MemoryStats, UtilizationStats
from ._vendor import import_vendor, logger


class NvidiaBackend:
    """The NVIDIA GPUs that NVML reports, named ``nv0``, ``nv1``, ... by NVML index."""

    def __init__(self, nvml: ModuleType, handles: dict[int, Any]) -> None:
        self._nvml = nvml
        self._handles = handles
        self._errors: tuple[type[BaseException], ...] = (nvml.NVMLError, OSError)
        # nvmlDeviceGetMemoryInfo_v2 (which adds `reserved`) is missing from old drivers.
        self._memory_v2: int | None = getattr(nvml, "nvmlMemory_v2", None)

    @classmethod
    def open(cls) -> NvidiaBackend | None:
        """Initialise NVML; ``None`` without the library, the driver or any GPU."""
        nvml = import_vendor("pynvml")
        if nvml is None:
            return None
        errors = (nvml.NVMLError, OSError)
        try:
            nvml.nvmlInit()
        except errors as error:
            logger.debug("NVML did not initialise: %r", error)
            return None
        try:
            count = nvml.nvmlDeviceGetCount()
        except errors as error:
            logger.debug("NVML could not count devices: %r", error)
            count = 0
        handles = {}
        for index in range(count):
            try:
                handles[index] = nvml.nvmlDeviceGetHandleByIndex(index)
            except errors as error:
                logger.debug("NVML device %d is unavailable: %r", index, error)
        backend = cls(nvml, handles)
        if not handles:
            backend.close()
            return None
        return backend

    def get_stats(self) -> dict[str, GPUStats]:
        """Stats of each device that answered; a device whose query fails is left out."""
        stats = {}
        for index, handle in self._handles.items():
            try:
                stats[f"nv{index}"] = GPUStats(self._memory(handle), self._utilization(handle))
            except self._errors as error:
                logger.debug("NVML query of nv%d failed: %r", index, error)
        return stats

    def close(self) -> None:
        """Shut NVML down (NVML counts initialisations, so other users keep theirs)."""
        try:
            self._nvml.nvmlShutdown()
        except self._errors as error:
            logger.debug("NVML did not shut down: %r", error)

    def _memory(self, handle: Any) -> MemoryStats:
        if self._memory_v2 is not None:
            try:
                info = self._nvml.nvmlDeviceGetMemoryInfo(handle, version=self._memory_v2)
                return MemoryStats(
                    int(info.total), int(info.free), int(info.used), int(info.reserved)
                )
            except self._errors as error:
                logger.debug("NVML memory info v2 failed, trying v1: %r", error)
                info = self._nvml.nvmlDeviceGetMemoryInfo(handle)
                self._memory_v2 = None  # v1 works where v2 does not: the driver lacks v2
                return MemoryStats(int(info.total), int(info.free), int(info.used), None)
        info = self._nvml.nvmlDeviceGetMemoryInfo(handle)
        return MemoryStats(int(info.total), int(info.free), int(info.used), None)

    def _utilization(self, handle: Any) -> UtilizationStats:
        rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
        return UtilizationStats(int(rates.gpu), int(rates.memory))
