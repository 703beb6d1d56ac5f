"""``print`` and ``assert_same_device``: debugging aids."""

from __future__ import annotations

from typing import Any

from max.dialects.mo.opdefs import OPS
from max.graph.graph import Graph
from max.graph.value import BufferValue, TensorValue, Value


def print(value: str | TensorValue, label: str = "debug_tensor") -> None:  # noqa: A001
    """Prints the value of a tensor or a string during graph execution.

    This function is used to output the current value of a tensor and is primarily used for
    debugging purposes. When the graph runs, the compiled code writes one line to standard
    output: ``LABEL (DTYPE, shape [DIMS]): [e0, e1, ...]`` with the elements in row-major
    order, or the string itself for a string value. Prints happen in program order.

    Args:
        value: The value to print. Can be either a string or a TensorValue.
        label: A label to identify the printed value. Defaults to ``debug_tensor``.
    """
    from max.graph.ops.constant import constant

    if not isinstance(label, str):
        raise TypeError(f"print: label must be a str, got {type(label).__name__}")
    if isinstance(value, str):
        # The op needs an operand: an empty tensor whose elements are not printed.
        from max.dtype import DType
        from max.graph.type import DeviceRef

        import numpy as np

        x = constant(np.zeros(0, np.uint8), DType.uint8, DeviceRef.CPU())
        attrs: dict[str, Any] = {"label": value, "values": 0}
    else:
        if isinstance(value, BufferValue):
            raise TypeError("print: a buffer cannot be printed directly; use its print() "
                            "method or print(ops.buffer_load(buffer))")
        if not isinstance(value, TensorValue):
            raise TypeError(f"print: value must be a str or a TensorValue, got "
                            f"{type(value).__name__}")
        x = value
        dims = ", ".join(str(d) for d in x.shape)
        attrs = {"label": f"{label} ({x.dtype.name}, shape [{dims}]): ", "values": 1}
    OPS["mo.print"].verify([x.type], attrs, None)
    Graph.current._add_op("mo.print", [x], [], attrs)


def assert_same_device(*values: TensorValue | BufferValue,
                       **named_values: TensorValue | BufferValue) -> None:
    """Raises ``ValueError`` unless all the values are on one device.

    Args:
        values: Tensor or buffer values.
        named_values: Tensor or buffer values, named in the error.
    """
    items = [(f"value {i}", v) for i, v in enumerate(values)] + list(named_values.items())
    for name, v in items:
        if not isinstance(v, Value):
            raise TypeError(f"assert_same_device: {name} must be a TensorValue or BufferValue, "
                            f"got {type(v).__name__}")
    if not items:
        return
    first_name, first = items[0]
    for name, v in items[1:]:
        if v.device != first.device:
            raise ValueError(f"assert_same_device: {name} is on {v.device}, {first_name} on "
                             f"{first.device}")
