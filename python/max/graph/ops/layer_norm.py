"""``layer_norm``: layer normalization over the trailing dims (``mo.layer_norm``)."""

from __future__ import annotations

import math
from typing import Any

from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit, is_weak, same_device, weak_to_tensor


def layer_norm(input: Any, gamma: Any, beta: Any, epsilon: float) -> TensorValue:
    """Performs layer normalization.

    Normalizes ``input`` over its last ``gamma.rank`` dims (the last dim for a 1-D
    ``gamma``), then scales by ``gamma`` and shifts by ``beta``.

    Args:
        input: The input tensor to normalize (a floating-point dtype).
        gamma: The gamma parameter of the normalization.
        beta: The beta parameter of the normalization.
        epsilon: The epsilon parameter of the normalization.

    Returns:
        A graph tensor value with the normalization applied.

    Raises:
        ValueError: If gamma size doesn't match the last dimension of input.
        ValueError: If beta size doesn't match the last dimension of input.
        ValueError: If epsilon is not positive.
    """
    x = as_strong("layer_norm", input, "input")
    if not x.dtype.is_float():
        raise ValueError(f"layer_norm: input must have a floating-point dtype, got {x.dtype.name}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float):
        raise TypeError(f"layer_norm: epsilon must be a float, got {epsilon!r}")
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError(f"layer_norm: epsilon must be positive, got {epsilon}")
    params = []
    for name, p in (("gamma", gamma), ("beta", beta)):
        if is_weak(p):
            p = weak_to_tensor("layer_norm", p, x.dtype, x.device)
        p = as_strong("layer_norm", p, name)
        if p.dtype != x.dtype:
            raise ValueError(
                f"layer_norm: {name} dtype {p.dtype.name} differs from input dtype {x.dtype.name}"
            )
        if not 1 <= p.rank <= x.rank or list(p.shape) != list(x.shape[x.rank - p.rank :]):
            raise ValueError(
                f"layer_norm: {name} shape {_dims.shape_text(p.shape)} does not match the last "
                f"dimension(s) of input shape {_dims.shape_text(x.shape)}"
            )
        params.append(p)
    gamma, beta = params
    if list(gamma.shape) != list(beta.shape):
        raise ValueError(
            f"layer_norm: gamma shape {_dims.shape_text(gamma.shape)} and beta shape "
            f"{_dims.shape_text(beta.shape)} differ"
        )
    same_device("layer_norm", [x, gamma, beta])
    return emit(
        "mo.layer_norm", [x, gamma, beta], x.dtype, x.shape, x.device,
        {"epsilon": float(epsilon)},
    )
