"""``tile``: copies of a tensor along each dim (``mo.tile``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit


def tile(x: Any, repeats: Iterable[Any]) -> TensorValue:
    """Returns a new Tensor as the result of copying the input tensor N_i times on each
    dimension, where N_i = repeats[i].

    The i-th dimension of output shape will be the ith dimension of input shape multiplied
    by N_i. A repeat may be symbolic (a dim of a graph input).

    Args:
        x: The tensor to tile.
        repeats: The number of copies for each dimension, one positive value per dimension
            of ``x``.

    Returns:
        The tiled tensor, of shape ``[x.shape[i] * repeats[i] for each i]``.

    Raises:
        ValueError: If ``repeats`` doesn't have one value per dimension, or a static repeat
            is not positive.
        TypeError: If ``repeats`` is not a sequence of dims.
    """
    from max.graph.ops.rebind import require_bound

    x = as_strong("tile", x)
    if isinstance(repeats, TensorValue | str) or not isinstance(repeats, Iterable):
        raise TypeError(f"tile: repeats must be a sequence of dims, got {repeats!r}")
    counts = [_dims.as_dim(r, where=f"tile: repeats[{i}]") for i, r in enumerate(repeats)]
    if len(counts) != x.rank:
        raise ValueError(f"tile: repeats has {len(counts)} values, one per dim of "
                         f"{_dims.shape_text(x.shape)} ({x.rank}) is needed")
    for i, c in enumerate(counts):
        value = _dims.static_value(c)
        if value is not None and value <= 0:
            raise ValueError(f"tile: repeats[{i}] = {value} must be positive")
    require_bound("tile", counts, "repeats")
    if all(c == 1 for c in counts):
        return x
    return emit("mo.tile", [x], x.dtype, [c * d for c, d in zip(counts, x.shape)], x.device)
