"""``stack``: joins tensors along a new axis (``unsqueeze`` each, then ``concat``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong


def stack(values: Iterable[Any], axis: int = 0) -> TensorValue:
    """Stacks a list of tensors along a new axis.

    Args:
        values: A list of symbolic tensor values. Each tensor must have the same dtype and
            rank, and must have the same dimension size for each dimension.
        axis: The axis to concatenate along. If negative, indexes relative to the end of the
            tensor shape plus 1. For instance, ``stack(vs, -1)`` will create and stack along
            a new axis as the last dimension, and ``stack(vs, -2)`` will create and stack
            along a new dimension which is inserted immediately before the last dimension.

    Returns:
        A new symbolic tensor representing the result of the stack. It will have rank
        ``n+1`` where ``n`` is the rank of each input tensor. Its size on each dimension
        other than ``axis`` will be the same as each input tensors', with the new axis
        inserted. Along the new dimension it will have size ``len(values)``.

    Raises:
        ValueError: If no values are given, the axis is out of range, or the dtypes, shapes
            or devices differ.
        TypeError: If ``values`` is a single tensor or holds a non-tensor.
    """
    from max.graph.ops.concat import concat
    from max.graph.ops.reshape import unsqueeze

    if isinstance(values, TensorValue) or not isinstance(values, Iterable):
        raise TypeError("stack: values must be a list of tensors, not one tensor")
    tensors = [as_strong("stack", v, f"values[{i}]") for i, v in enumerate(values)]
    if not tensors:
        raise ValueError("stack: expected at least one tensor")
    first = tensors[0]
    rank = first.rank
    if isinstance(axis, bool) or not isinstance(axis, int) and not _dims._is_np_int(axis):
        raise TypeError(f"stack: axis must be an int, got {axis!r}")
    if not -rank - 1 <= int(axis) <= rank:
        raise _dims.AxisError(f"stack: axis={axis} is out of range for stacking tensors of rank "
                         f"{rank} (expected {-rank - 1} <= axis <= {rank})")
    for i, v in enumerate(tensors[1:], 1):
        if v.dtype != first.dtype:
            raise ValueError(f"stack: all inputs must have one dtype: values[0] is "
                             f"{first.dtype.name}, values[{i}] is {v.dtype.name}")
        if list(v.shape) != list(first.shape):
            raise ValueError(f"stack: all inputs must have one shape: values[0] is "
                             f"{_dims.shape_text(first.shape)}, values[{i}] is "
                             f"{_dims.shape_text(v.shape)}")
    axis = _dims.normalize_axis("stack", axis, rank + 1)
    return concat([unsqueeze(v, axis) for v in tensors], axis)
