"""Devices and device memory: ``CPU``, ``Accelerator``, and ``Tensor`` (also ``Buffer``).

Tensors live on the host, backed by numpy arrays, and speak DLPack both ways (numpy,
PyTorch), zero copy. Accelerators are found through the vendors' driver libraries;
without any, ``accelerator_count()`` is 0 and everything still imports.

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
