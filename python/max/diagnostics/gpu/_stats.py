"""The records a GPU query returns: memory in bytes, utilization in percent."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MemoryStats:
    """Detailed GPU memory usage statistics including total, free, used, and reserved memory.

    This class provides comprehensive memory information for a GPU, allowing developers to
    monitor memory consumption and identify potential memory bottlenecks during model
    inference or training. Every field is in bytes.

    Attributes:
        total_bytes: Total GPU memory in bytes.
        free_bytes: Currently available GPU memory in bytes.
        used_bytes: Currently allocated GPU memory in bytes.
        reserved_bytes: Memory reserved by the driver, if available from the GPU vendor
            (NVIDIA reports it; AMD does not, and it is ``None`` there).
    """

    total_bytes: int
    free_bytes: int
    used_bytes: int
    reserved_bytes: int | None


@dataclass(frozen=True, slots=True)
class UtilizationStats:
    """GPU compute and memory activity utilization percentages.

    This class captures the current utilization levels of a GPU's compute units and memory
    subsystem, providing insights into how effectively the GPU resources are being utilized
    during workload execution.

    Attributes:
        gpu_usage_percent: Current GPU compute utilization as a percentage (0-100).
        memory_activity_percent: Memory controller activity percentage, if available from
            the GPU vendor.
    """

    gpu_usage_percent: int
    memory_activity_percent: int | None


@dataclass(frozen=True, slots=True)
class GPUStats:
    """Comprehensive GPU state snapshot containing memory and utilization metrics.

    This class provides a complete view of a GPU's current state, including detailed memory
    usage statistics and utilization percentages. It serves as the primary data structure
    returned by GPU diagnostic queries.

    Attributes:
        memory: Current GPU memory usage statistics.
        utilization: Current GPU compute and memory utilization percentages.
    """

    memory: MemoryStats
    utilization: UtilizationStats
