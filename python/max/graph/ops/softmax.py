"""``softmax`` and ``logsoftmax`` along one axis (``mo.softmax``, ``mo.logsoftmax``)."""

from __future__ import annotations

from typing import Any

from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit


def _normalization(op: str, value: Any, axis: int) -> TensorValue:
    x = as_strong(op, value, "value")
    if not x.dtype.is_float():
        raise ValueError(f"{op}: expected a floating-point dtype, got {x.dtype.name}")
    axis = _dims.normalize_axis(op, axis, x.rank)
    return emit(f"mo.{op}", [x], x.dtype, x.shape, x.device, {"axis": axis})


def softmax(value: Any, axis: int = -1) -> TensorValue:
    """Computes the softmax of a symbolic tensor along ``axis``: ``exp(x) / sum(exp(x))``.

    Args:
        value: The input tensor (a floating-point dtype).
        axis: The axis to normalize over; negative counts from the end.

    Returns:
        A symbolic tensor of the input's shape and dtype.

    Raises:
        ValueError: If the dtype is not floating-point or ``axis`` is out of range.
    """
    return _normalization("softmax", value, axis)


def logsoftmax(value: Any, axis: int = -1) -> TensorValue:
    """Computes the log of the softmax of a symbolic tensor along ``axis``.

    Args:
        value: The input tensor (a floating-point dtype).
        axis: The axis to normalize over; negative counts from the end.

    Returns:
        A symbolic tensor of the input's shape and dtype.

    Raises:
        ValueError: If the dtype is not floating-point or ``axis`` is out of range.
    """
    return _normalization("logsoftmax", value, axis)
