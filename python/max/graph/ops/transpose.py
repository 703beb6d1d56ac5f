"""``transpose`` and ``permute``: both ``mo.transpose`` with a permutation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit


def _permute(op: str, x: TensorValue, permutation: Sequence[int]) -> TensorValue:
    dims = [x.shape[p] for p in permutation]
    return emit("mo.transpose", [x], x.dtype, dims, x.device, {"permutation": list(permutation)})


def transpose(x: Any, axis_1: int, axis_2: int) -> TensorValue:
    """Transposes two axes of a symbolic tensor.

    Args:
        x: The input symbolic tensor to transpose.
        axis_1: One of the two axes to transpose. If negative, this indexes from the end of
            the tensor. For example, ``transpose(v, -1, -2)`` transposes the last two axes.
        axis_2: The other axis to transpose. May also be negative to index from the end of
            the tensor.

    Returns:
        A new symbolic tensor with the two specified axes transposed. It has the same
        elements and dtype, but the order of the elements is different according to the
        transposition.
    """
    x = as_strong("transpose", x)
    a = _dims.normalize_axis("transpose", axis_1, x.rank, name="axis_1")
    b = _dims.normalize_axis("transpose", axis_2, x.rank, name="axis_2")
    permutation = list(range(x.rank))
    permutation[a], permutation[b] = b, a
    return _permute("transpose", x, permutation)


def permute(x: Any, dims: Sequence[int]) -> TensorValue:
    """Permutes all dimensions of a symbolic tensor.

    Args:
        x: The input symbolic tensor to transpose.
        dims: The desired ordering of the dimensions in the output tensor (negative
            entries count from the end).

    Returns:
        A new symbolic tensor with the dimensions permuted to match the passed in order. It
        has the same elements and dtype, but the order of the elements is different
        according to the permutation.

    Raises:
        ValueError: If ``dims`` is not a permutation of the tensor's axes.
    """
    x = as_strong("permute", x)
    dims = list(dims)
    if len(dims) != x.rank:
        raise ValueError(
            f"permute: dims {dims} must name each of the {x.rank} axes of shape "
            f"{_dims.shape_text(x.shape)} once"
        )
    permutation = [_dims.normalize_axis("permute", d, x.rank, name="dims entry") for d in dims]
    if sorted(permutation) != list(range(x.rank)):
        raise ValueError(f"permute: dims {dims} is not a permutation of range({x.rank})")
    return _permute("permute", x, permutation)
