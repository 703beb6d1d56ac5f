"""Reductions over one axis, which stays in the result with size 1: ``sum``, ``mean``,
``max``/``min`` (with one tensor), ``argmax`` and ``argmin`` (``int64`` results)."""

from __future__ import annotations

from typing import Any

from max.dtype import DType
from max.graph.dim import Dim, StaticDim
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit
from max.graph.ops.elementwise import _max, _min


# Reductions without an identity: over an empty axis they have no result.
_NEEDS_ELEMENT = ("max", "min", "argmax", "argmin")


def _reduce(op: str, mo_op: str, x: Any, axis: int, dtype: DType | None = None) -> TensorValue:
    x = as_strong(op, x)
    axis = _dims.normalize_axis(op, axis, x.rank)
    if op in ("sum", "mean") and x.dtype == DType.bool:
        raise ValueError(f"{op}: expected a numeric dtype, got bool; cast with ops.cast")
    if op in _NEEDS_ELEMENT and isinstance(x.shape[axis], StaticDim) and int(x.shape[axis]) == 0:
        # numpy raises here too; a symbolic size that is 0 at run time fails a runtime check.
        shape = ", ".join(str(d) for d in x.shape)
        raise ValueError(f"{op}: axis {axis} of shape [{shape}] is empty, and an empty {op} "
                         f"has no value (numpy raises too)")
    dims = list(x.shape)
    dims[axis] = Dim(1)
    return emit(mo_op, [x], dtype or x.dtype, dims, x.device, {"axis": axis})


_RETURNS = """

    Args:
        x: The input tensor for the operation.
        axis: The axis along which to compute the reduction. If negative, indexes from the
            last dimension. For example, a value of -1 will compute the reduction along the
            last dimension.

    Returns:
        A symbolic tensor representing the result of the {name} operation. The tensor will
        have the same rank as the input tensor, and the same shape except along the ``axis``
        dimension which will have size 1.

    Raises:
        ValueError: If ``axis`` is out of range.
    """


def sum(x: Any, axis: int = -1) -> TensorValue:
    return _reduce("sum", "mo.reduce_sum", x, axis)


def mean(x: Any, axis: int = -1) -> TensorValue:
    return _reduce("mean", "mo.reduce_mean", x, axis)


def argmax(x: Any, axis: int = -1) -> TensorValue:
    return _reduce("argmax", "mo.argmax", x, axis, DType.int64)


def argmin(x: Any, axis: int = -1) -> TensorValue:
    return _reduce("argmin", "mo.argmin", x, axis, DType.int64)


sum.__doc__ = "Reduces a symbolic tensor using a sum operation." + _RETURNS.format(name="sum")
mean.__doc__ = "Reduces a symbolic tensor using a mean operation." + _RETURNS.format(name="mean")
argmax.__doc__ = (
    "Reduces a symbolic tensor using an argmax operation (``int64`` indices; the first "
    "index among equal maxima on CPU)." + _RETURNS.format(name="argmax")
)
argmin.__doc__ = (
    "Reduces a symbolic tensor using an argmin operation (``int64`` indices; the first "
    "index among equal minima on CPU)." + _RETURNS.format(name="argmin")
)


def max(x: Any, y: Any = None, /, axis: int | None = None) -> TensorValue:
    """Overload for ops.elementwise.max and ops.reduction.max.

    - If two tensors are provided, ``axis`` is ignored and returns an elementwise maximum
      (with dtype promotion and broadcasting).
    - If one tensor is provided, compute the maximum along ``axis`` (default -1), keeping
      the axis with size 1.

    Args:
        x: The input tensor.
        y: An optional second tensor for the elementwise form.
        axis: The axis of the reduction form.

    Returns:
        The elementwise or reduced maximum.
    """
    if y is not None:
        return _max(x, y)
    return _reduce("max", "mo.reduce_max", x, -1 if axis is None else axis)


def min(x: Any, y: Any = None, /, axis: int | None = None) -> TensorValue:
    """Overload for ops.elementwise.min and ops.reduction.min.

    - If two tensors are provided, ``axis`` is ignored and returns an elementwise minimum
      (with dtype promotion and broadcasting).
    - If one tensor is provided, compute the minimum along ``axis`` (default -1), keeping
      the axis with size 1.

    Args:
        x: The input tensor.
        y: An optional second tensor for the elementwise form.
        axis: The axis of the reduction form.

    Returns:
        The elementwise or reduced minimum.
    """
    if y is not None:
        return _min(x, y)
    return _reduce("min", "mo.reduce_min", x, -1 if axis is None else axis)
