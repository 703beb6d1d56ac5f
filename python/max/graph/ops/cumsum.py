"""``cumsum``: the cumulative sum along one axis (``mo.cumsum``)."""

from __future__ import annotations

from typing import Any

from max.dtype import DType
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit


def _flag(op: str, value: Any, name: str) -> int:
    if not isinstance(value, bool | int) or value not in (0, 1):
        raise TypeError(f"{op}: {name} must be a bool, got {value!r}")
    return int(value)


def cumsum(x: Any, axis: int = -1, exclusive: bool = False, reverse: bool = False) -> TensorValue:
    """Computes the cumulative sum of the input tensor along the given axis.

    Args:
        x: The input tensor to sum over.
        axis: The axis along which to compute the sum. If negative, indexes from the last
            dimension. For example, a value of -1 will compute the sum along the last
            dimension.
        exclusive: If set, start at 0 and exclude the final element. Otherwise, start with
            the first element. Said another way, cumsum computes
            ``[sum(x[..., :i, ...]) for i in range(x.shape[axis])]``. If exclusive is set,
            the bounds are instead ``range(1, x.shape[axis])``.
        reverse: If set, start from the end. In other words, the first element will be the
            total sum, with each element following counting downwards; or
            ``[sum(x[..., i:, ...]) for i in range(x.shape[axis])]``.

    Returns:
        A symbolic tensor representing the result of the cumsum operation. The tensor will
        have the same type as the input tensor. The computed values will be the cumulative
        sum of the values along the given axis, according to the specified parameters:

        - if ``exclusive`` is set, the first value will be 0, and the last value will be
          excluded from the sum
        - if ``reverse`` is set, the sum will be computed starting at the back of the axis
          back to the front, rather than front-to-back

        Integers wrap around in their own dtype; 16-bit floats accumulate in float32.

    Raises:
        ValueError: If ``axis`` is out of range for the rank of ``x``, or ``x`` is bool.
        TypeError: If ``axis`` is not an int or a flag is not a bool.
    """
    x = as_strong("cumsum", x)
    if x.dtype == DType.bool:
        raise ValueError("cumsum: expected a numeric dtype, got bool; cast with ops.cast")
    if x.rank == 0:
        raise ValueError("cumsum: x is a scalar (rank 0): there is no axis to sum along")
    axis = _dims.normalize_axis("cumsum", axis, x.rank)
    attrs = {"axis": axis, "exclusive": _flag("cumsum", exclusive, "exclusive"),
             "reverse": _flag("cumsum", reverse, "reverse")}
    return emit("mo.cumsum", [x], x.dtype, x.shape, x.device, attrs)
