"""``atanh``: ``(log1p(x) - log1p(-x)) / 2``, a composite of elementwise ops."""

from __future__ import annotations

from typing import Any

from max.graph.value import TensorValue

from max.graph.ops._promotion import as_strong


def atanh(x: Any) -> TensorValue:
    """Computes the elementwise inverse hyperbolic tangent of a symbolic tensor.

    ``atanh(x) = (log1p(x) - log1p(-x)) / 2``: exact to a few ulp over (-1, 1) (``log1p``
    keeps the small ``x``), ``±inf`` at ``±1`` and NaN outside ``[-1, 1]``, as numpy.

    Args:
        x: The symbolic tensor to use as the input (a floating-point dtype).

    Returns:
        A new symbolic tensor value with the shape and dtype of the input.

    Raises:
        TypeError: If ``x`` is not a graph value.
        ValueError: If the input dtype is not a floating-point dtype.
    """
    from max.graph.ops.elementwise import log1p, mul, negate, sub

    x = as_strong("atanh", x)
    if not x.dtype.is_float():
        raise ValueError(f"atanh: expected a floating-point dtype, got {x.dtype.name}; cast "
                         "with ops.cast")
    # One fused elementwise loop after lowering; log1p keeps the precision near 0 that
    # 0.5 * log((1 + x) / (1 - x)) would lose.
    return mul(sub(log1p(x), log1p(negate(x))), 0.5)
