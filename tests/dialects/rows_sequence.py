"""Numeric rows of the sequence MO ops (``dialects/mo/opdefs/sequence.py``) and ``mo.acos``,
each expected value from PyTorch or numpy written differently from the op's reference."""

from __future__ import annotations

import numpy as np
import torch
from mo_op_rows import Row, f32, i32, t

from max.dtype import DType


def _exclusive_reverse_cumsum(x: np.ndarray) -> np.ndarray:
    """sum(x[..., i + 1:]) along the last axis, one element at a time."""
    out = np.zeros_like(x)
    for i in range(x.shape[-1]):
        out[..., i] = x[..., i + 1:].sum(-1)
    return out


def _band(x: np.ndarray, lower: int, upper: int, exclude: bool) -> np.ndarray:
    """torch's triu/tril spelling of the band."""
    tx = torch.from_numpy(x)
    # m - n <= lower is triu(-lower); n - m <= upper is tril(upper)
    band = tx.triu(-lower).tril(upper) if lower >= 0 and upper >= 0 else (
        tx.triu(-lower) if lower >= 0 else tx.tril(upper))
    return (tx - band).numpy() if exclude else band.numpy()


def _scalar(value: int | float, dtype: type) -> np.ndarray:
    return np.array(value, dtype)


_RANGE_F = (_scalar(0.5, np.float32), _scalar(3.0, np.float32), _scalar(0.25, np.float32))
_RANGE_I = (_scalar(10, np.int32), _scalar(-3, np.int32), _scalar(-4, np.int32))

ROWS: dict[str, list[Row]] = {
    "mo.acos": [
        Row((f32(3, 4, lo=-1.0, hi=1.0),), t(torch.acos)),
        # outside [-1, 1] clamps (MAX's rule); NaN stays NaN
        Row((np.array([-2.0, -1.0, 1.0, 3.0, np.nan], np.float32),),
            lambda x: np.array([np.pi, np.pi, 0.0, 0.0, np.nan], np.float32)),
    ],
    "mo.cumsum": [
        Row((f32(3, 5),), t(lambda x: torch.cumsum(x, 1)),
            {"axis": 1, "exclusive": 0, "reverse": 0}),
        Row((i32(4, 3),), t(lambda x: torch.cumsum(x.flip(0), 0).flip(0).to(torch.int32)),
            {"axis": 0, "exclusive": 0, "reverse": 1}),
        Row((f32(2, 6),), _exclusive_reverse_cumsum,
            {"axis": 1, "exclusive": 1, "reverse": 1}),
    ],
    "mo.band_part": [
        Row((f32(2, 4, 5),), lambda x: _band(x, 1, 0, False),
            {"num_lower": 1, "num_upper": 0, "exclude": 0}),
        Row((i32(5, 3),), lambda x: _band(x, -1, 1, True),
            {"num_lower": -1, "num_upper": 1, "exclude": 1}),
    ],
    "mo.pad": [
        Row((f32(2, 3), _scalar(-1.5, np.float32)),
            t(lambda x, v: torch.nn.functional.pad(x, (2, 0, 1, 3), value=float(v))),
            {"paddings": [1, 3, 2, 0]}),
    ],
    "mo.range": [
        Row(_RANGE_F, lambda a, b, c: torch.arange(0.5, 3.0, 0.25).numpy(),
            result=(DType.float32, (10,))),
        Row(_RANGE_I, lambda a, b, c: np.array(list(range(10, -3, -4)), np.int32),
            result=(DType.int32, (4,))),
    ],
    "mo.rebind": [
        Row((f32(2, 3),), lambda x: x.copy(), {"message": "static shapes"},
            result=(DType.float32, (2, 3))),
    ],
    "mo.tile": [
        Row((i32(2, 3),), t(lambda x: x.repeat(3, 2)), result=(DType.int32, (6, 6))),
    ],
    "mo.shape_to_tensor": [
        Row((), lambda: np.array([4, 0, 7], np.int64), {"dims": "[4, 0, 7]"},
            result=(DType.int64, (3,))),
    ],
}
