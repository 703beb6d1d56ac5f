"""``cast``: converts a tensor to another dtype (``mo.cast``)."""

from __future__ import annotations

from typing import Any

from max.dtype import DType
from max.graph.value import TensorValue

from max.graph.ops._promotion import as_strong, emit


def cast(x: Any, dtype: DType) -> TensorValue:
    """Casts a symbolic tensor to a different data type.

    Args:
        x: The input tensor to cast.
        dtype: The target dtype to which the tensor is cast.

    Returns:
        A new symbolic tensor with the same shape as the input and the specified dtype.

    Raises:
        TypeError: If ``x`` is not a graph value or ``dtype`` is not a ``DType``.
    """
    x = as_strong("cast", x)
    if not isinstance(dtype, DType):
        raise TypeError(f"cast: dtype must be a max.dtype.DType, got {dtype!r}")
    return emit("mo.cast", [x], dtype, x.shape, x.device)
