"""``outer``: the outer product of two vectors (reshapes and a broadcasting ``mul``)."""

from __future__ import annotations

from typing import Any

from max.graph.dim import Dim
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import promote


def outer(lhs: Any, rhs: Any) -> TensorValue:
    """Computes the outer product of two symbolic vectors.

    ``lhs`` and ``rhs`` promote to one dtype as in :func:`mul`; their element counts may
    differ (as in numpy and PyTorch).

    Args:
        lhs: The left side of the product. Whatever its shape, it will be flattened to a
            rank-1 vector.
        rhs: The right side of the product. Whatever its shape, it will be flattened to a
            rank-1 vector.

    Returns:
        A symbolic tensor representing the outer product of the two input vectors. It will
        have rank 2, with the dimension sizes being the number of elements of lhs and rhs
        respectively.

    Raises:
        TypeError: If an operand is not a graph value.
        ValueError: If the dtypes do not promote or the devices differ.
    """
    from max.graph.ops.elementwise import mul
    from max.graph.ops.reshape import reshape

    lhs, rhs = promote("outer", [lhs, rhs], ["lhs", "rhs"])
    n, m = _dims.num_elements(lhs.shape), _dims.num_elements(rhs.shape)
    # [n, 1] * [1, m]: mul broadcasts by indexing maps, nothing is copied before it.
    return mul(reshape(lhs, [n, Dim(1)]), reshape(rhs, [Dim(1), m]))
