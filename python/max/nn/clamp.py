"""``clamp``: limits the values of a tensor to ``[min, max]``."""

from __future__ import annotations

from max.graph import TensorValue, ops


def clamp(x: TensorValue, min: float | None = None, max: float | None = None) -> TensorValue:
    """Clamps values in ``x`` to ``[min, max]``.

    As ``torch.clamp``: NaN stays NaN, and where ``min > max`` every value becomes ``max``.

    Args:
        x: Input tensor to clamp.
        min: Minimum value. If ``None``, no lower bound is applied.
        max: Maximum value. If ``None``, no upper bound is applied.

    Returns:
        Clamped tensor.
    """
    x = TensorValue(x)
    # where() rather than elementwise max/min: a comparison with NaN is false, so NaN passes.
    if min is not None:
        x = ops.where(x < min, min, x)
    if max is not None:
        x = ops.where(x > max, max, x)
    return x
