"""Real-time GPU monitoring and diagnostic capabilities for NVIDIA and AMD graphics hardware.

The GPU diagnostics module provides comprehensive tools for monitoring graphics processing
unit performance, memory usage, and utilization metrics. It supports both NVIDIA GPUs through
NVML and AMD GPUs through ROCm SMI, offering unified access to hardware statistics regardless
of vendor. The API enables both synchronous queries for immediate metrics
(:class:`GPUDiagContext`) and asynchronous background collection for continuous monitoring
during long-running inference sessions (:class:`BackgroundRecorder`).

The vendor libraries are optional (``pip install max-mlir[gpu]`` installs ``nvidia-ml-py``
and ``amdsmi``) and are imported only when a context opens. Without them, without a driver,
or without a GPU, every query returns empty results instead of raising.
"""

from ._context import GPUDiagContext
from ._recorder import BackgroundRecorder
from ._stats import GPUStats, MemoryStats, UtilizationStats

__all__ = [
    "BackgroundRecorder",
    "GPUDiagContext",
    "GPUStats",
    "MemoryStats",
    "UtilizationStats",
]
