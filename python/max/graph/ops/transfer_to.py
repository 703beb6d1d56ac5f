"""``transfer_to`` (moves a tensor to another device) and ``allgather`` (gathers tensors from
several devices onto each of them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from max.graph.type import DeviceRef
from max.graph.value import BufferValue, TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit


def transfer_to(x: Any, device: Any) -> TensorValue:
    """Device-to-Device transfer operation.

    This op transfers the input tensor from its current device over to another. A device
    represents a computation unit, like CPU, GPU, etc. A transfer to the device the tensor is
    already on returns it unchanged; otherwise it is one ``mo.transfer`` op (on the CPU, where
    every ``DeviceRef.CPU(n)`` is host memory, a copy).

    Args:
        x: The input tensor to transfer.
        device: The device to transfer to (a ``DeviceRef`` or a driver ``Device``).

    Returns:
        A tensor transferred to device specified.
    """
    x = as_strong("transfer_to", x)
    target = DeviceRef.from_device(device)
    if target == x.device:
        return x
    return emit("mo.transfer", [x], x.dtype, list(x.shape), target)


def allgather(inputs: Iterable[Any], signal_buffers: Iterable[Any],
              axis: int = 0) -> list[TensorValue]:
    """Collective allgather operation.

    This op is a collective op which takes in tensors from different devices and outputs
    tensors on different devices. In particular, this operation will gather the inputs across
    different devices and concatenates them along the specified dimension. The result is then
    broadcasted back to the same devices that the inputs came from.

    Here it is composed of :func:`transfer_to` and :func:`concat` per device (the CPU needs
    no synchronization: ``signal_buffers``, one per input, are checked and otherwise unused).

    Args:
        inputs: The input tensors to gather.
        signal_buffers: Device buffer values used for synchronization.
        axis: Dimension to concatenate the input tensors. Defaults to 0.

    Returns:
        An iterable outputs which all hold the gathered output. Each output tensor contains
        the concatenation of all inputs along the specified dimension.
    """
    from max.graph.ops.concat import concat

    values = [as_strong("allgather", x, f"inputs[{i}]") for i, x in enumerate(inputs)]
    buffers = list(signal_buffers)
    if not values:
        raise ValueError("allgather: inputs must not be empty")
    if len(buffers) != len(values):
        raise ValueError(f"allgather: expected {len(values)} signal buffers (one per input), "
                         f"got {len(buffers)}")
    for i, b in enumerate(buffers):
        if not isinstance(b, BufferValue):
            raise TypeError(f"allgather: signal_buffers[{i}] must be a BufferValue, got "
                            f"{type(b).__name__}")
    devices = [v.device for v in values]
    for i, d in enumerate(devices):
        if d in devices[:i]:
            raise ValueError(f"allgather: inputs[{i}] is on {d}, as inputs[{devices.index(d)}]:"
                             " each input must be on its own device")
    rank = values[0].rank
    for i, v in enumerate(values):
        if v.rank != rank or v.dtype != values[0].dtype:
            raise ValueError(f"allgather: inputs[{i}] is {v.dtype.name} of rank {v.rank}, "
                             f"inputs[0] {values[0].dtype.name} of rank {rank}")
    if not -rank <= axis < rank:
        raise _dims.AxisError(f"allgather: axis {axis} is out of range for rank {rank}")
    return [concat([transfer_to(v, device) for v in values], axis=axis) for device in devices]
