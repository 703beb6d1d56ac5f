"""GPUDiagContext: every vendor library that works here, behind one ``get_stats()``."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from ._amd import AmdBackend
from ._nvidia import NvidiaBackend
from ._stats import GPUStats
from ._vendor import Backend


class GPUDiagContext:
    """Context manager providing unified access to GPU diagnostic information across NVIDIA
    and AMD hardware.

    This class automatically detects and initializes supported GPU vendor libraries (NVML for
    NVIDIA, ROCm SMI for AMD) and provides a unified interface for collecting diagnostic
    statistics from all available GPUs in the system. A vendor whose library is not
    installed, or whose driver or GPUs are absent, contributes nothing: on a machine without
    GPUs, :meth:`get_stats` returns an empty dictionary.

    Example:
        >>> from max.diagnostics.gpu import GPUDiagContext
        >>> with GPUDiagContext() as ctx:
        ...     stats = ctx.get_stats()
        >>> all(s.memory.used_bytes <= s.memory.total_bytes for s in stats.values())
        True
    """

    def __init__(self) -> None:
        self._backends: list[Backend] | None = None

    def __enter__(self) -> Self:
        if self._backends is not None:
            raise RuntimeError("GPUDiagContext is already entered; it cannot be nested")
        backends: list[Backend] = []
        for backend in (NvidiaBackend.open(), AmdBackend.open()):
            if backend is not None:
                backends.append(backend)
        self._backends = backends
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for backend in self._backends or ():
            backend.close()
        self._backends = None

    def get_stats(self) -> dict[str, GPUStats]:
        """Retrieve current GPU statistics for all detected GPUs in the system.

        A GPU whose vendor query fails at this moment is left out of the result rather than
        raising, so one faulty device does not hide the others.

        Returns:
            A dictionary mapping GPU identifiers to their current statistics. NVIDIA GPUs are
            prefixed with ``nv`` (e.g., ``nv0``, ``nv1``) and AMD GPUs are prefixed with
            ``amd`` (e.g., ``amd0``, ``amd1``).

        Raises:
            RuntimeError: If called outside the ``with GPUDiagContext()`` block.
        """
        if self._backends is None:
            raise RuntimeError(
                "GPUDiagContext.get_stats() needs an open context: "
                "call it inside `with GPUDiagContext() as ctx:`"
            )
        stats: dict[str, GPUStats] = {}
        for backend in self._backends:
            stats.update(backend.get_stats())
        return stats

    @property
    def _has_gpus(self) -> bool:
        """Whether any vendor library found a GPU (the background recorder's test)."""
        return bool(self._backends)
