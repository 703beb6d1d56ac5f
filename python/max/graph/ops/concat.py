"""``concat``: joins tensors along one axis (a chain of binary ``mo.concat``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit, same_device


def concat(original_vals: Iterable[Any], axis: int = 0) -> TensorValue:
    """Concatenates a list of symbolic tensors along an axis.

    Args:
        original_vals: A list of symbolic tensor values. Each tensor must have the same
            dtype and rank, and must have the same dimension size for each dimension other
            than ``axis``.
        axis: The axis to concatenate along. If negative, indexes relative to the end of the
            tensor shape. For instance, ``concat(vs, -1)`` will concat along the last
            dimension.

    Returns:
        A new symbolic tensor representing the concatenation result. It will have the same
        rank as each input tensor, and its dimensions will be the same as each input
        tensor's for each dimension other than ``axis``, which will have size equal to the
        sum of all tensor's size for that dimension (symbolic sizes add up algebraically:
        ``"a"`` and ``"b"`` give ``a + b``).

    Raises:
        ValueError: If no tensors are given, or their dtypes, ranks, devices or other
            dims differ.
    """
    if isinstance(original_vals, TensorValue):
        raise TypeError("concat: original_vals must be a list of tensors, not one tensor")
    values = [as_strong("concat", v, f"original_vals[{i}]") for i, v in enumerate(original_vals)]
    if not values:
        raise ValueError("concat: expected at least one tensor")
    first = values[0]
    if first.rank == 0:
        raise ValueError(
            "concat: rank-0 tensors cannot be concatenated (as in numpy); make them rank 1 "
            "first, e.g. with ops.unsqueeze(x, 0)"
        )
    axis = _dims.normalize_axis("concat", axis, first.rank)
    same_device("concat", values)
    for i, v in enumerate(values[1:], 1):
        if v.dtype != first.dtype:
            raise ValueError(
                f"concat: all inputs must have one dtype: original_vals[0] is "
                f"{first.dtype.name}, original_vals[{i}] is {v.dtype.name}"
            )
        if v.rank != first.rank:
            raise ValueError(
                f"concat: all inputs must have one rank: shapes "
                f"{_dims.shape_text(first.shape)} and {_dims.shape_text(v.shape)}"
            )
        for j in range(first.rank):
            if j != axis and v.shape[j] != first.shape[j]:
                raise ValueError(
                    f"concat: dim {j} differs between original_vals[0] "
                    f"{_dims.shape_text(first.shape)} and original_vals[{i}] "
                    f"{_dims.shape_text(v.shape)} (only axis {axis} may differ)"
                )
    # mo.concat is binary: an N-way concat is a chain of N-1, sizes adding up along the way.
    result = first
    for v in values[1:]:
        dims = list(result.shape)
        dims[axis] = result.shape[axis] + v.shape[axis]
        result = emit("mo.concat", [result, v], first.dtype, dims, first.device, {"axis": axis})
    return result
