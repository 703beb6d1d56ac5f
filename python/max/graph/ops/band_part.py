"""``band_part``: keeps a diagonal band of the last two axes, zero elsewhere (``mo.band_part``)."""

from __future__ import annotations

from typing import Any

from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit


def _count(value: Any, name: str, size: int | None, axis: str) -> int:
    """-1 for None (the whole triangle), else the checked count."""
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, int) and not _dims._is_np_int(value):
        raise TypeError(f"band_part: {name} must be an int or None, got {value!r}")
    value = int(value)
    if value < -1:
        raise ValueError(f"band_part: {name}={value} must be non-negative (or None, or -1 "
                         "for the whole triangle)")
    if size is not None and value >= size:
        raise ValueError(f"band_part: {name}={value} is out of bounds for the {axis} dim of "
                         f"size {size}")
    return value


def band_part(x: Any, num_lower: int | None = None, num_upper: int | None = None,
              exclude: bool = False) -> TensorValue:
    """Masks out everything except a diagonal band of an input matrix.

    Copies a tensor setting everything outside the central diagonal band of the matrices to
    zero, where all but the last two axes are effectively batches, and the last two axes
    define sub matrices. Assumes the input has dimensions ``[I, J, ..., M, N]``, then the
    output tensor has the same shape as the input, and the values are given by
    ``out[i, j, ..., m, n] = in_band(m, n) * input[i, j, ..., m, n]`` with the indicator
    function ``in_band(m, n) = ((num_lower is None || (m - n) <= num_lower)) &&
    (num_upper is None || (n - m) <= num_upper))``.

    Args:
        x: The input to mask out.
        num_lower: The number of diagonal bands to include below the central diagonal. If
            None, include the entire lower triangle (-1 means the same, as in MAX).
        num_upper: The number of diagonal bands to include above the central diagonal. If
            None, include the entire upper triangle (-1 means the same).
        exclude: If true, invert the selection of elements to mask. Elements in the band are
            set to zero.

    Returns:
        A symbolic tensor value with the configured selection masked out to 0 values, and
        the remaining values copied from the input tensor.

    Raises:
        ValueError: If the input tensor rank is less than 2, or if num_lower/num_upper are
            out of bounds for statically known dimensions.
        TypeError: If num_lower/num_upper is not an int or None, or exclude not a bool.
    """
    x = as_strong("band_part", x)
    if x.rank < 2:
        raise ValueError(f"band_part: the input {_dims.shape_text(x.shape)} must have rank >= 2 "
                         f"(got rank {x.rank})")
    if not isinstance(exclude, bool | int) or exclude not in (0, 1):
        raise TypeError(f"band_part: exclude must be a bool, got {exclude!r}")
    m, n = (_dims.static_value(d) for d in x.shape[-2:])
    # num_lower counts rows below the diagonal (bounded by M), num_upper columns (by N).
    lower = _count(num_lower, "num_lower", m, "second-to-last")
    upper = _count(num_upper, "num_upper", n, "last")
    attrs = {"num_lower": lower, "num_upper": upper, "exclude": int(exclude)}
    return emit("mo.band_part", [x], x.dtype, x.shape, x.device, attrs)
