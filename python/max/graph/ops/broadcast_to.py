"""``broadcast_to``: numpy broadcasting of a tensor to a given shape (``mo.broadcast_to``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from max.graph.dim import Dim
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit


def _broadcast_to(op: str, x: TensorValue, dims: list[Dim]) -> TensorValue:
    """Checks and emits the broadcast of ``x`` to ``dims``."""
    if len(dims) < x.rank:
        raise ValueError(
            f"{op}: cannot broadcast shape {_dims.shape_text(x.shape)} to the lower-rank "
            f"shape {_dims.shape_text(dims)}"
        )
    offset = len(dims) - x.rank
    for i, d in enumerate(x.shape):
        if d != 1 and d != dims[offset + i]:
            raise ValueError(
                f"{op}: cannot broadcast shape {_dims.shape_text(x.shape)} to "
                f"{_dims.shape_text(dims)}: input dim {i} is {_dims.dim_text(d)}, target "
                f"dim is {_dims.dim_text(dims[offset + i])} (must be equal or the input 1)"
            )
    return emit("mo.broadcast_to", [x], x.dtype, dims, x.device)


def broadcast_to(
    x: Any, shape: Iterable[Any] | TensorValue, out_dims: Iterable[Any] | None = None
) -> TensorValue:
    """Broadcasts a symbolic tensor.

    Broadcasts the input tensor to the specified shape. Dimensions in the input must be one
    or match the target dimension.

    Args:
        x: The input symbolic tensor to broadcast.
        shape: The new shape as a list of dimensions.
        out_dims: Output dims used only for tensor-valued shape.

    Returns:
        A symbolic tensor with the same elements as the original tensor, but in a new shape.
        Its symbolic shape is the same as ``shape``.

    Raises:
        ValueError: If a tensor-valued shape is passed without ``out_dims``, or the input
            shape does not broadcast to ``shape``.
    """
    x = as_strong("broadcast_to", x)
    if isinstance(shape, TensorValue):
        if out_dims is None:
            raise ValueError("broadcast_to: a tensor-valued shape needs out_dims")
        raise NotImplementedError("broadcast_to: tensor-valued shapes are not supported yet")
    if isinstance(shape, str | int) or not isinstance(shape, Iterable):
        raise TypeError(f"broadcast_to: shape must be a sequence of dims, got {shape!r}")
    dims = [_dims.as_dim(d, where=f"broadcast_to: shape[{i}]") for i, d in enumerate(shape)]
    return _broadcast_to("broadcast_to", x, dims)
