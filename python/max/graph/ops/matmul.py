"""``matmul``: batched matrix multiplication with numpy's rules (``mo.matmul``)."""

from __future__ import annotations

from typing import Any

from max.dtype import DType
from max.graph.dim import Dim
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import broadcast_shapes, emit, promote
from max.graph.ops.broadcast_to import _broadcast_to
from max.graph.ops.reshape import _reshape_to


def matmul(lhs: Any, rhs: Any) -> TensorValue:
    """Computes the matrix multiplication of two tensor graph values.

    Performs general matrix multiplication with broadcasting. If the lhs is 1D, it will be
    reshaped to ``1xD``. If the rhs is 1D, it will be reshaped to ``Dx1``. In both cases,
    the additional 1 dimensions will be removed from the output shape.

    For the multiplication, the innermost (rightmost) 2 dimensions are treated as a matrix.
    The lhs matrix will have the shape ``MxK``. The rhs matrix will have the shape ``KxN``.
    The output will have the shape ``MxN``. The ``K`` dimensions must be equivalent in both
    matrices. The remaining outer dimensions will be broadcasted.

    Args:
        lhs: The left-hand-side of the matmul.
        rhs: The right-hand-side of the matmul.

    Returns:
        A tensor graph value representing the result of broadcasting the two matrices
        together and then performing a matrix multiply along the innermost two dimension of
        each tensor.

    Raises:
        ValueError: If an operand is a scalar, the ``K`` dims differ, the batch dims do not
            broadcast, or the dtypes do not promote.
    """
    lhs, rhs = promote("matmul", [lhs, rhs], ["lhs", "rhs"])
    if lhs.dtype == DType.bool:
        raise ValueError("matmul: expected a numeric dtype, got bool")
    if lhs.rank == 0 or rhs.rank == 0:
        raise ValueError(
            f"matmul: operands must have rank >= 1, got shapes {_dims.shape_text(lhs.shape)} "
            f"and {_dims.shape_text(rhs.shape)}"
        )
    shapes = f"{_dims.shape_text(lhs.shape)} @ {_dims.shape_text(rhs.shape)}"
    lhs_vector, rhs_vector = lhs.rank == 1, rhs.rank == 1
    k_lhs = lhs.shape[-1]
    k_rhs = rhs.shape[0] if rhs_vector else rhs.shape[-2]
    if k_lhs != k_rhs:
        raise ValueError(
            f"matmul: the K dims differ: lhs has {_dims.dim_text(k_lhs)}, rhs has "
            f"{_dims.dim_text(k_rhs)} (shapes {shapes})"
        )
    if lhs_vector:
        lhs = _reshape_to(lhs, [Dim(1), k_lhs])
    if rhs_vector:
        rhs = _reshape_to(rhs, [k_rhs, Dim(1)])
    batch = broadcast_shapes(f"matmul (batch dims of {shapes})", [lhs.shape[:-2], rhs.shape[:-2]])
    m, n = lhs.shape[-2], rhs.shape[-1]
    if list(lhs.shape[:-2]) != batch:
        lhs = _broadcast_to("matmul", lhs, [*batch, m, k_lhs])
    if rhs.rank != 2 and list(rhs.shape[:-2]) != batch:
        rhs = _broadcast_to("matmul", rhs, [*batch, k_rhs, n])
    result = emit("mo.matmul", [lhs, rhs], lhs.dtype, [*batch, m, n], lhs.device)
    if lhs_vector or rhs_vector:
        dims = [*batch] + ([] if lhs_vector else [m]) + ([] if rhs_vector else [n])
        result = _reshape_to(result, dims)
    return result
