"""Reshapes, all ``mo.reshape``: ``reshape`` (with one inferred ``-1``), ``squeeze``,
``unsqueeze`` and ``flatten``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from max.graph.dim import Dim
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit


def _reshape_to(x: TensorValue, dims: Sequence[Dim]) -> TensorValue:
    """Emits the ``mo.reshape`` of ``x`` to ``dims`` (already checked)."""
    return emit("mo.reshape", [x], x.dtype, list(dims), x.device)


def _target_dims(shape: Any) -> list[Dim | None]:
    """The dims of a reshape target; ``None`` marks the one ``-1``."""
    if isinstance(shape, TensorValue):
        raise TypeError("reshape: tensor-valued shapes are not supported; pass a list of dims")
    if isinstance(shape, str | int) or not isinstance(shape, Iterable):
        raise TypeError(f"reshape: shape must be a sequence of dims, got {shape!r}")
    out: list[Dim | None] = []
    for i, d in enumerate(shape):
        dim = _dims.as_dim(d, where=f"reshape: shape[{i}]")
        value = _dims.static_value(dim)
        if value == -1:
            if None in out:
                raise ValueError(f"reshape: shape {list(shape)} has more than one -1")
            out.append(None)
        elif value is not None and value < 0:
            raise ValueError(f"reshape: shape[{i}] = {value} is negative (only -1 may be)")
        else:
            out.append(dim)
    return out


def reshape(x: Any, shape: Iterable[Any]) -> TensorValue:
    """Reshapes a symbolic tensor.

    The number and order of the elements in the tensor is unchanged. In other words, if you
    were to iterate over elements in the tensor by major dimension to minor dimension, the
    iteration order would stay the same.

    If a value of -1 is present in the shape, that dimension becomes an automatically
    calculated dimension collecting all unspecified dimensions. Its length becomes the number
    of elements in the original tensor divided by the product of elements of the reshape;
    with symbolic dims this division is done by the dim algebra
    (``("batch", 28, 28)`` to ``(-1, 784)`` gives ``["batch", 784]``).

    Args:
        x: The input symbolic tensor to reshape.
        shape: The new shape as a list of dimensions. A single dimension may be -1.

    Returns:
        A symbolic tensor with the same elements as the original tensor, but in a new shape.

    Raises:
        ValueError: If input and target shapes' number of elements mismatch, or the -1
            cannot be inferred.
    """
    x = as_strong("reshape", x)
    target = _target_dims(shape)
    total = _dims.num_elements(x.shape)
    known = _dims.num_elements([d for d in target if d is not None])
    shown = "[" + ", ".join("-1" if d is None else _dims.dim_text(d) for d in target) + "]"
    if None in target:
        if known == 0:  # numpy refuses too: every size would fit
            raise ValueError(
                f"reshape: cannot infer the -1 in {shown}: the other dims multiply to 0, so "
                f"any size would fit (input shape {_dims.shape_text(x.shape)})"
            )
        inferred = _dims.exact_div(total, known)
        if inferred is None:
            raise ValueError(
                f"reshape: cannot infer the -1 in {shown} from input shape "
                f"{_dims.shape_text(x.shape)}: {total} elements are not "
                f"a multiple of {known}"
            )
        dims = [inferred if d is None else d for d in target]
    else:
        if total != known:
            raise ValueError(
                f"reshape: input shape {_dims.shape_text(x.shape)} "
                f"({total} elements) and target shape {shown} "
                f"({known} elements) have different numbers of elements"
            )
        dims = [d for d in target if d is not None]
    return _reshape_to(x, dims)


def squeeze(x: Any, axis: int) -> TensorValue:
    """Removes a size-1 dimension from a symbolic tensor.

    Args:
        x: The input symbolic tensor to squeeze.
        axis: The dimension to remove from the input's shape. If negative, this indexes
            from the end of the tensor. For example, ``squeeze(v, -1)`` squeezes the last
            dimension.

    Returns:
        A symbolic tensor with the same number of elements as the input tensor, and whose
        rank is 1 less than the rank of the input tensor.

    Raises:
        ValueError: If the axis is out of range or its dim is not a static 1.
    """
    x = as_strong("squeeze", x)
    axis = _dims.normalize_axis("squeeze", axis, x.rank)
    if x.shape[axis] != 1:
        raise ValueError(
            f"squeeze: dim {axis} of shape {_dims.shape_text(x.shape)} is "
            f"{_dims.dim_text(x.shape[axis])}, not 1"
        )
    return _reshape_to(x, [d for i, d in enumerate(x.shape) if i != axis])


def unsqueeze(x: Any, axis: int) -> TensorValue:
    """Inserts a size-1 dimension into a symbolic tensor.

    Args:
        x: The input symbolic tensor to unsqueeze.
        axis: The index at which to insert a new dimension into the input's shape. Elements
            at that index or higher are shifted back. If negative, it indexes relative 1 plus
            the rank of the tensor. For example, ``unsqueeze(v, -1)`` adds a new dimension at
            the end, and ``unsqueeze(v, -2)`` inserts the dimension immediately before the
            last dimension.

    Returns:
        A symbolic tensor with the same number of elements as the input tensor, whose rank
        is 1 larger than the rank of the input tensor. The result's shape at the ``axis``
        dimension is a static dimension of size 1.
    """
    x = as_strong("unsqueeze", x)
    if isinstance(axis, int) and not isinstance(axis, bool) and not -x.rank - 1 <= axis <= x.rank:
        raise _dims.AxisError(
            f"unsqueeze: axis={axis} is out of range for a tensor of rank {x.rank} (expected "
            f"{-x.rank - 1} <= axis <= {x.rank})"
        )
    axis = _dims.normalize_axis("unsqueeze", axis, x.rank + 1)
    dims = list(x.shape)
    dims.insert(axis, Dim(1))
    return _reshape_to(x, dims)


def flatten(x: Any, start_dim: int = 0, end_dim: int = -1) -> TensorValue:
    """Flattens the specified dims of a symbolic tensor.

    The number and order of the elements in the tensor is unchanged. All dimensions from
    ``start_dim`` to ``end_dim`` (inclusive) are merged into a single output dim.

    Args:
        x: The input symbolic tensor to flatten.
        start_dim: The first dim to merge (negative counts from the end).
        end_dim: The last dim to merge, inclusive (negative counts from the end).

    Returns:
        A symbolic tensor whose dims ``start_dim..end_dim`` are replaced by their product.

    Raises:
        ValueError: If an axis is out of range or ``start_dim`` comes after ``end_dim``.
    """
    x = as_strong("flatten", x)
    rank = max(x.rank, 1)  # a scalar flattens to shape [1]
    start = _dims.normalize_axis("flatten", start_dim, rank, name="start_dim")
    end = _dims.normalize_axis("flatten", end_dim, rank, name="end_dim")
    if x.rank == 0:
        return _reshape_to(x, [Dim(1)])
    if start > end:
        raise ValueError(
            f"flatten: start_dim={start_dim} comes after end_dim={end_dim} for shape "
            f"{_dims.shape_text(x.shape)}"
        )
    merged = _dims.num_elements(x.shape[start : end + 1])
    return _reshape_to(x, [*x.shape[:start], merged, *x.shape[end + 1 :]])
