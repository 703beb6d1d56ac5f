"""``top_k`` and ``argsort``: a stable sort along one axis (``mo.argsort``: O(n log n), or
O(n k) at worst and about O(n) on most data for a top-k of at most 64).

Ties keep the order of their positions (lower index first) and NaN sorts above every number
(first in ``top_k``, last in an ascending ``argsort``), as ``torch.sort(stable=True)`` and
``torch.topk`` do.
"""

from __future__ import annotations

from typing import Any

from max.dtype import DType
from max.graph.dim import Dim
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit
from max.graph.ops.indexing import _emit_gather_nd
from max.graph.ops.reshape import unsqueeze
from max.graph.ops.transpose import _permute


def _sorted_positions(op: str, x: TensorValue, axis: int, keep: Dim,
                      descending: bool) -> TensorValue:
    dims = list(x.shape)
    dims[axis] = keep
    return emit("mo.argsort", [x], DType.int64, dims, x.device,
                {"axis": axis, "descending": int(descending)})


def top_k(input: Any, k: int, axis: int = -1) -> tuple[TensorValue, TensorValue]:
    """Returns tensor with only top K values along given axis.

    The values come largest first; equal values in the order of their positions, NaN above
    every number (``torch.topk``'s order). The indices are ``int64``.

    Args:
        input: The input tensor from which to select top k.
        k: The number of values to select from input (``0 <= k <= input.shape[axis]``).
        axis: The axis from which to select top k (negative counts from the end).

    Returns:
        Top K values, Top K indices: both of ``input``'s shape with ``k`` on ``axis``.

    Raises:
        TypeError: If ``k`` is not an int.
        ValueError: If ``input`` is a scalar, ``axis`` is out of range, ``k`` is negative or
            larger than a static ``axis``. A symbolic axis shorter than ``k`` is reported
            when the model runs (``ValueError``).
    """
    x = as_strong("top_k", input, "input")
    if x.rank == 0:
        raise ValueError("top_k: input must have rank >= 1, got a scalar")
    axis = _dims.normalize_axis("top_k", axis, x.rank)
    if isinstance(k, bool) or not isinstance(k, int) and not _dims._is_np_int(k):
        raise TypeError(f"top_k: k must be an int, got {k!r}")
    k = int(k)
    n = _dims.static_value(x.shape[axis])
    if k < 0 or (n is not None and k > n):
        raise ValueError(f"top_k: k={k} must be in [0, {_dims.dim_text(x.shape[axis])}], the "
                         f"size of axis {axis} of input {_dims.shape_text(x.shape)}")
    last = x.rank - 1
    # mo.gather_nd takes the values with batch_dims = all but the sorted axis, which must
    # therefore come last: move it there and back.
    order = [*(i for i in range(x.rank) if i != axis), axis]
    moved = _permute("top_k", x, order) if axis != last else x
    indices = _sorted_positions("top_k", moved, last, Dim(k), descending=True)
    values = _emit_gather_nd("top_k", moved, unsqueeze(indices, -1), last)
    if axis != last:
        back = [order.index(i) for i in range(x.rank)]
        values, indices = _permute("top_k", values, back), _permute("top_k", indices, back)
    return values, indices


def argsort(x: Any, ascending: bool = True) -> TensorValue:
    """Returns the indices that would sort a tensor.

    This function returns the indices that would sort the input tensor along its first
    dimension. The returned indices are of type int64. The sort is stable (equal values keep
    the order of their positions) and NaN sorts above every number.

    Args:
        x: Input tensor to be sorted.
        ascending: If True (default), sort in ascending order. If False, sort in descending
            order.

    Returns:
        A tensor of indices of the same shape as the input tensor.

    Raises:
        TypeError: If ``ascending`` is not a bool.
        ValueError: If ``x`` is a scalar.
    """
    x = as_strong("argsort", x)
    if not isinstance(ascending, bool):
        raise TypeError(f"argsort: ascending must be a bool, got {ascending!r}")
    if x.rank == 0:
        raise ValueError("argsort: x must have rank >= 1 (it sorts the first dimension), got a "
                         "scalar")
    return _sorted_positions("argsort", x, 0, x.shape[0], descending=not ascending)
