"""mo.resize_bicubic: bicubic resampling of the two spatial dims of an NCHW tensor.

As PyTorch's ``interpolate(mode="bicubic", align_corners=False)``: output pixel ``o`` of an
axis of input size ``n`` and output size ``m`` samples the input at ``(o + 0.5) * n / m - 0.5``
with Keys' cubic convolution (A = -0.75) over 4 taps, reading clamped to the edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from max.dialects.mo.opdefs.base import (
    OpDef,
    TypeLike,
    TypeRuleError,
    expect_device,
    shape_text,
)
from max.dialects.mo.opdefs.elementwise import floating
from max.dialects.mo.opdefs.reference import REFERENCES, FoldContext, Folder

A = -0.75  # Keys' cubic convolution parameter, as PyTorch and OpenCV


def _check(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
           result: TypeLike) -> None:
    (x,) = operands
    floating(op, x.dtype)
    if len(x.shape) != 4:
        raise TypeRuleError(f"{op}: operand x {shape_text(x.shape)} must have rank 4 (NCHW)")
    if (result.dtype != x.dtype or len(result.shape) != 4
            or list(result.shape[:2]) != list(x.shape[:2])):
        raise TypeRuleError(f"{op}: result {result.dtype.name} {shape_text(result.shape)} must "
                            f"keep the dtype {x.dtype.name}, rank 4 and N, C of operand x "
                            f"{shape_text(x.shape)}")
    expect_device(op, result, x.device)


def cubic_weights(t: np.ndarray) -> list[np.ndarray]:
    """The 4 tap weights at fractional offset ``t`` (taps at -1, 0, 1, 2)."""
    def near(v: np.ndarray) -> np.ndarray:  # |v| <= 1
        return ((A + 2) * v - (A + 3)) * v * v + 1

    def far(v: np.ndarray) -> np.ndarray:  # 1 < |v| < 2
        return ((A * v - 5 * A) * v + 8 * A) * v - 4 * A

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _reference(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    out = x.astype(np.float64)
    for axis, m in ((2, ctx.shape[2]), (3, ctx.shape[3])):
        n = out.shape[axis]
        src = (np.arange(m) + 0.5) * (n / m) - 0.5
        base = np.floor(src)
        weights = cubic_weights(src - base)
        acc = 0.0
        for k, w in enumerate(weights):
            idx = np.clip(base.astype(np.int64) - 1 + k, 0, n - 1)
            shape = [1, 1, 1, 1]
            shape[axis] = m
            acc = acc + np.take(out, idx, axis=axis) * w.reshape(shape)
        out = acc
    return out


REFERENCES["mo.resize_bicubic"] = Folder(_reference)


def defs() -> list[OpDef]:
    return [OpDef("mo.resize_bicubic", ("x",), check=_check,
                  reference=REFERENCES["mo.resize_bicubic"])]
