"""``where``: elementwise select with numpy broadcasting (``mo.where``)."""

from __future__ import annotations

from typing import Any

from max.dtype import DType
from max.graph.value import TensorValue

from max.graph.ops._promotion import (
    as_strong,
    broadcast_shapes,
    emit,
    is_weak,
    promote,
    same_device,
    weak_to_tensor,
)


def where(condition: Any, x: Any, y: Any) -> TensorValue:
    """Returns ``condition ? x : y`` (element-wise), where ``cond``, ``x`` and ``y`` are
    input tensors.

    ``x`` and ``y`` are promoted to one dtype (a Python scalar takes the other's dtype) and
    all three shapes broadcast.

    Args:
        condition: The condition tensor to use for selecting elementwise values. This tensor
            must have a boolean dtype.
        x: If the condition is true at a position, the value from the same position in this
            tensor will be selected.
        y: If the condition is false at a position, the value from the same position in this
            tensor will be selected.

    Returns:
        A new symbolic tensor holding either values from either ``x`` or ``y``, based on the
        elements in condition.

    Raises:
        ValueError: If ``condition`` is not bool, or the shapes or dtypes are incompatible.
    """
    x, y = promote("where", [x, y], ["x", "y"])
    if is_weak(condition):
        condition = weak_to_tensor("where", condition, DType.bool, x.device)
    condition = as_strong("where", condition, "condition")
    if condition.dtype != DType.bool:
        raise ValueError(f"where: condition must have dtype bool, got {condition.dtype.name}")
    same_device("where", [condition, x, y])
    shape = broadcast_shapes("where", [condition.shape, x.shape, y.shape])
    return emit("mo.where", [condition, x, y], x.dtype, shape, x.device)
