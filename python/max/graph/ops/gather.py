"""``gather``: selects elements of a tensor by index along one axis (``mo.gather``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from max.dtype import DType
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit, is_weak, same_device


def gather(input: Any, indices: Any, axis: int) -> TensorValue:
    """Selects elements out of an input tensor by index.

    The result is ``numpy.take(input, indices, axis)``: its shape is
    ``input.shape[:axis] + indices.shape + input.shape[axis + 1:]``. Negative indices count
    from the end of the axis; an index outside ``[-n, n)`` is reported at run time.

    Args:
        input: The input symbolic tensor to select elements from.
        indices: A symbolic tensor of index values to use for selection (an integer dtype).
        axis: The dimension which ``indices`` indexes from ``input``. If negative, indexes
            relative to the end of the input tensor. For instance,
            ``gather(input, indices, axis=-1)`` will index against the last dimension of
            ``input``.

    Returns:
        A new symbolic tensor representing the result of the gather operation.

    Raises:
        ValueError: If ``indices`` does not have an integer dtype or ``axis`` is out of
            range.
    """
    input = as_strong("gather", input, "input")
    if is_weak(indices) or isinstance(indices, list | tuple):
        from max.graph.ops.constant import constant

        array = np.asarray(indices)
        if array.dtype.kind not in "iu":
            raise ValueError(f"gather: indices must be integers, got numpy dtype {array.dtype}")
        indices = constant(array, DType.int64, input.device)
    indices = as_strong("gather", indices, "indices")
    if not indices.dtype.is_integral():
        raise ValueError(f"gather: indices must have an integer dtype, got {indices.dtype.name}")
    axis = _dims.normalize_axis("gather", axis, input.rank)
    same_device("gather", [input, indices])
    dims = [*input.shape[:axis], *indices.shape, *input.shape[axis + 1 :]]
    return emit("mo.gather", [input, indices], input.dtype, dims, input.device, {"axis": axis})
