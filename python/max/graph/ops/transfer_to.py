"""``transfer_to``: moves a tensor to another device."""

from __future__ import annotations

from typing import Any

from max.graph.type import DeviceRef
from max.graph.value import TensorValue

from max.graph.ops._promotion import as_strong


def transfer_to(x: Any, device: Any) -> TensorValue:
    """Device-to-Device transfer operation.

    This op transfers the input tensor from its current device over to another. A device
    represents a computation unit, like CPU, GPU, etc. A transfer to the device the tensor is
    already on returns it unchanged.

    Args:
        x: The input tensor to transfer.
        device: The device to transfer to (a ``DeviceRef`` or a driver ``Device``).

    Returns:
        A tensor transferred to device specified.

    Raises:
        NotImplementedError: For a transfer between different devices (there is no MO
            transfer op yet).
    """
    x = as_strong("transfer_to", x)
    target = DeviceRef.from_device(device)
    if target == x.device:
        return x
    raise NotImplementedError(
        f"transfer_to: moving a tensor from {x.device} to {target} is not supported yet "
        "(graphs run on one device)"
    )
