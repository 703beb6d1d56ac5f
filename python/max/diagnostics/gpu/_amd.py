"""AMD GPUs through ROCm SMI (the ``amdsmi`` module shipped with ROCm and on PyPI)."""

from __future__ import annotations

import contextlib
import io
from types import ModuleType
from typing import Any

from ._stats import GPUStats, MemoryStats, UtilizationStats
from ._vendor import import_vendor, logger


class AmdBackend:
    """The AMD GPUs that amdsmi reports, named ``amd0``, ``amd1``, ... in its order."""

    def __init__(self, smi: ModuleType, handles: list[Any]) -> None:
        self._smi = smi
        self._handles = handles
        self._errors: tuple[type[BaseException], ...] = (smi.AmdSmiException, OSError)

    @classmethod
    def open(cls) -> AmdBackend | None:
        """Initialise amdsmi for GPUs; ``None`` without the library, ROCm or any GPU."""
        smi = import_vendor("amdsmi")
        if smi is None:
            return None
        errors = (smi.AmdSmiException, OSError)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                smi.amdsmi_init(smi.AmdSmiInitFlags.INIT_AMD_GPUS)
        except errors as error:
            logger.debug("amdsmi did not initialise: %r", error)
            return None
        backend = cls(smi, [])
        try:
            backend._handles = list(smi.amdsmi_get_processor_handles())
        except errors as error:
            logger.debug("amdsmi could not list devices: %r", error)
        if not backend._handles:
            backend.close()
            return None
        return backend

    def get_stats(self) -> dict[str, GPUStats]:
        """Stats of each device that answered; a device whose query fails is left out."""
        stats = {}
        for index, handle in enumerate(self._handles):
            try:
                device = self._device_stats(handle)
            except self._errors as error:
                logger.debug("amdsmi query of amd%d failed: %r", index, error)
                continue
            if device is not None:
                stats[f"amd{index}"] = device
        return stats

    def close(self) -> None:
        """Shut amdsmi down."""
        try:
            self._smi.amdsmi_shut_down()
        except self._errors as error:
            logger.debug("amdsmi did not shut down: %r", error)

    def _device_stats(self, handle: Any) -> GPUStats | None:
        vram = self._smi.AmdSmiMemoryType.VRAM
        total = int(self._smi.amdsmi_get_gpu_memory_total(handle, vram))
        used = int(self._smi.amdsmi_get_gpu_memory_usage(handle, vram))
        activity = self._smi.amdsmi_get_gpu_activity(handle)
        gpu_usage = _percent(activity.get("gfx_activity"))
        if gpu_usage is None:
            logger.debug("amdsmi reports no graphics activity for a device: %r", activity)
            return None
        memory = MemoryStats(total, total - used, used, None)
        return GPUStats(memory, UtilizationStats(gpu_usage, _percent(activity.get("umc_activity"))))


def _percent(value: object) -> int | None:
    """amdsmi's activity value as an int; it writes ``"N/A"`` where the GPU has none."""
    return value if isinstance(value, int) else None
