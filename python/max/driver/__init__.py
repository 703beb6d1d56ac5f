"""Devices and device memory: ``CPU``, ``Accelerator``, and ``Tensor`` (also ``Buffer``).

Host tensors are backed by numpy arrays; accelerator tensors by device memory of the GPU
runtime (``max.runtime.gpu``). Both speak DLPack both ways (numpy, PyTorch; ``kDLCUDA`` /
``kDLROCM`` on GPUs), zero copy. Accelerators are found through the vendors' driver
libraries (``$MAX_GPU_DRIVER_LIBRARY`` names another one); without any,
``accelerator_count()`` is 0 and everything still imports.

Example:
    >>> from max import driver
    >>> device = driver.CPU() if driver.accelerator_count() == 0 else driver.Accelerator()
    >>> device.label in ("cpu", "gpu")
    True
"""

from __future__ import annotations

from max.driver._dlpack import DLPackArray
from max.driver.device import (
    CPU,
    Accelerator,
    Device,
    DeviceSpec,
    DeviceStream,
    accelerator_api,
    accelerator_architecture_name,
    accelerator_count,
    devices_exist,
    load_devices,
    scan_available_devices,
)
from max.driver.tensor import Buffer, Tensor

__all__ = [
    "Accelerator",
    "Buffer",
    "CPU",
    "DLPackArray",
    "Device",
    "DeviceSpec",
    "DeviceStream",
    "Tensor",
    "accelerator_api",
    "accelerator_architecture_name",
    "accelerator_count",
    "devices_exist",
    "load_devices",
    "scan_available_devices",
]
