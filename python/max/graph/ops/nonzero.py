"""``nonzero`` (``mo.nonzero``) and ``masked_scatter`` (a composite on it): ops whose sizes
only the data determines."""

from __future__ import annotations

from typing import Any

from max.dtype import DType
from max.graph.dim import Dim
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit, same_device
from max.graph.ops.rebind import bind_data_symbol


def nonzero(x: Any, out_dim: Any) -> TensorValue:
    """Returns the indices of all nozero elements in a tensor.

    Returns a tensor of indices of the nonzero values in the given tensor. The return value
    is a 2D tensor of shape ``[out_dim x rank_in]``, where out_dim is the number of nonzero
    elements in the input tensor, and rank_in is the rank of the input tensor. Indices are
    generated in row-major order.

    ``out_dim`` names a new symbol (one that no graph input has, e.g. ``"nnz"``): the count
    is computed when the graph runs, the result is allocated with it, and later ops of the
    graph may use the symbol (an output whose shape uses it is returned by the model with
    its actual size). A dim that is already known (static, or bound) is checked instead:
    ``Model.execute`` raises ``ValueError`` when the count differs. NaN is non-zero, -0.0
    is zero (numpy's rule); a bool tensor counts its true elements.

    Args:
        x: The input symbolic tensor.
        out_dim: The newly generated dimension that is sized for the number of nonzero
            elements.

    Returns:
        A symbolic tensor of indices (int64).

    Raises:
        TypeError: If ``x`` is not a graph value.
        ValueError: If ``out_dim`` is not a dim, or is a new symbol inside a control-flow
            body or subgraph.
    """
    x = as_strong("nonzero", x)
    count = _dims.as_dim(out_dim, where="nonzero: out_dim")
    if (_dims.static_value(count) or 0) < 0:
        raise ValueError(f"nonzero: out_dim={out_dim} is negative")
    bind_data_symbol("nonzero", count, "out_dim")
    return emit("mo.nonzero", [x], DType.int64, [count, Dim(x.rank)], x.device)


def masked_scatter(input: Any, mask: Any, updates: Any, out_dim: Any) -> TensorValue:
    """Creates a new symbolic tensor where the updates are written to input where mask is
    true.

    As ``torch.Tensor.masked_scatter``: ``mask`` (bool) broadcasts to ``input``'s shape, and
    the elements of ``updates``, taken in row-major order, are written to the positions
    where it is true, in row-major order. ``out_dim`` names the number of true elements (a
    new symbol, bound when the graph runs, or a known dim, checked). ``updates`` must hold
    at least that many elements: fewer is an ``IndexError`` from ``Model.execute``.

    Args:
        input: The input symbolic tensor to write elements to.
        mask: A symbolic tensor of boolean values to update.
        updates: A symbolic tensor of elements to write to input.
        out_dim: The new data-dependent dimension.

    Returns:
        A new symbolic tensor representing the result of the masked_scatter operation (the
        shape and dtype of ``input``).

    Raises:
        TypeError: If an argument is not a graph value.
        ValueError: If ``mask`` is not bool, does not broadcast to ``input``'s shape, the
            dtypes of ``input`` and ``updates`` differ, or the devices differ.
    """
    from max.graph.ops.broadcast_to import broadcast_to
    from max.graph.ops.gather import gather
    from max.graph.ops.range import range as range_op
    from max.graph.ops.reshape import reshape
    from max.graph.ops.indexing import scatter_nd

    input = as_strong("masked_scatter", input, "input")
    mask = as_strong("masked_scatter", mask, "mask")
    updates = as_strong("masked_scatter", updates, "updates")
    if mask.dtype != DType.bool:
        raise ValueError(f"masked_scatter: mask must have dtype bool, got {mask.dtype.name}")
    if updates.dtype != input.dtype:
        raise ValueError(f"masked_scatter: updates has dtype {updates.dtype.name}, input "
                         f"{input.dtype.name}: they must be equal")
    same_device("masked_scatter", [input, mask, updates])
    try:
        if list(mask.shape) != list(input.shape):
            mask = broadcast_to(mask, input.shape)
    except ValueError as e:
        raise ValueError(f"masked_scatter: mask {_dims.shape_text(mask.shape)} does not "
                         f"broadcast to input {_dims.shape_text(input.shape)}: {e}") from None
    indices = nonzero(mask, out_dim)
    count = indices.shape[0]
    flat = reshape(updates, [_dims.num_elements(updates.shape)])
    # The first `count` updates, by a gather: an updates tensor too short for the mask is
    # reported by the gather's bounds check, never read past.
    first = gather(flat, range_op(0, count, 1, dtype=DType.int64, device=input.device), 0)
    return scatter_nd(input, first, indices)
