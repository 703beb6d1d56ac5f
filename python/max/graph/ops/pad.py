"""``pad``: constant padding (``mo.pad``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit, is_weak, weak_to_tensor

_MODES = ("constant",)


def pad(input: Any, paddings: Iterable[int], mode: str = "constant", value: Any = 0) -> TensorValue:
    """Pads a tensor with constant values.

    Adds padding to the input tensor using the specified padding values. Currently only
    constant padding mode is supported.

    Args:
        input: The input tensor to pad.
        paddings: Sequence of padding values. The padding values are applied symmetrically
            to each dimension. For a tensor with rank N, paddings should contain 2*N values:
            ``[pad_before_dim0, pad_after_dim0, pad_before_dim1, pad_after_dim1, ...]``.
            Each is a non-negative int; symbolic dims of the input grow algebraically.
        mode: The padding mode. Currently only "constant" is supported.
        value: The constant value to use for padding: a Python or numpy scalar (which takes
            the input's dtype, if it fits exactly), or a rank-0 tensor of the input's dtype.

    Returns:
        The padded tensor: dim ``i`` is ``input.shape[i] + paddings[2*i] + paddings[2*i+1]``.

    Raises:
        ValueError: On another mode, a wrong number of paddings, a negative padding, or a
            value that does not fit the input's dtype or is not a scalar.
        TypeError: If a padding is not an int.
    """
    x = as_strong("pad", input, "input")
    if mode not in _MODES:
        raise ValueError(f"pad: mode={mode!r} is not supported; only 'constant' is")
    if isinstance(paddings, TensorValue) or not isinstance(paddings, Iterable):
        raise TypeError(f"pad: paddings must be a sequence of ints, got {paddings!r}")
    pads = list(paddings)
    for i, p in enumerate(pads):
        if isinstance(p, bool) or not isinstance(p, int) and not _dims._is_np_int(p):
            raise TypeError(f"pad: paddings[{i}] must be an int, got {p!r}")
    pads = [int(p) for p in pads]
    if len(pads) != 2 * x.rank:
        raise ValueError(f"pad: paddings has {len(pads)} values, a tensor of rank {x.rank} "
                         f"(shape {_dims.shape_text(x.shape)}) needs {2 * x.rank}")
    for i, p in enumerate(pads):
        if p < 0:
            raise ValueError(f"pad: paddings[{i}] = {p} is negative")
    if is_weak(value):
        fill = weak_to_tensor("pad", value, x.dtype, x.device)
    else:
        fill = as_strong("pad", value, "value")
        if fill.dtype != x.dtype:
            raise ValueError(f"pad: value has dtype {fill.dtype.name}, the input "
                             f"{x.dtype.name}; cast it with ops.cast")
        if fill.device != x.device:
            raise ValueError(f"pad: value is on {fill.device}, the input on {x.device}")
    if fill.rank != 0:
        raise ValueError(f"pad: value must be a scalar, got shape {_dims.shape_text(fill.shape)}")
    dims = [d + pads[2 * i] + pads[2 * i + 1] for i, d in enumerate(x.shape)]
    return emit("mo.pad", [x, fill], x.dtype, dims, x.device, {"paddings": pads})
