"""Numeric rows for mo.conv2d, mo.max_pool2d and mo.avg_pool2d, expected values from PyTorch
(NCHW views of the NHWC arrays; the MO paddings applied with F.pad where they are
asymmetric)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mo_op_rows import Row, f32


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2)


def _nhwc(y: torch.Tensor) -> np.ndarray:
    return y.permute(0, 2, 3, 1).contiguous().numpy()


def _conv(a: dict[str, Any]) -> Any:
    pt, pb, pl, pr = a["paddings"]

    def fn(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        xp = F.pad(_nchw(x), (pl, pr, pt, pb))
        wt = torch.from_numpy(w).permute(3, 2, 0, 1)  # RSCF -> FCRS
        return _nhwc(F.conv2d(xp, wt, stride=a["strides"], dilation=a["dilations"],
                              groups=a["groups"]))

    return fn


def _conv_row(x: tuple[int, ...], w: tuple[int, ...], **kw: Any) -> Row:
    a = {"strides": [1, 1], "dilations": [1, 1], "paddings": [0, 0, 0, 0], "groups": 1, **kw}
    return Row((f32(*x), f32(*w)), _conv(a), a, rtol=1e-4, atol=1e-4)


def _conv_transpose(a: dict[str, Any]) -> Any:
    pt, pb, pl, pr = a["paddings"]

    def fn(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        wt = torch.from_numpy(w).permute(3, 2, 0, 1)  # [R, S, F, C] -> [C, F, R, S]
        y = F.conv_transpose2d(_nchw(x), wt, stride=a["strides"], dilation=a["dilations"])
        return _nhwc(y[:, :, pt: y.shape[2] - pb, pl: y.shape[3] - pr])

    return fn


def _pool_row(op: str, x: tuple[int, ...], **kw: Any) -> Row:
    a = {"kernel": [2, 2], "strides": [1, 1], "dilations": [1, 1], "paddings": [0, 0, 0, 0],
         "ceil_mode": 0, **kw}
    if op == "avg":
        a.setdefault("count_boundary", 1)

    def fn(v: np.ndarray) -> np.ndarray:
        t, p = _nchw(v), (a["paddings"][0], a["paddings"][2])
        if op == "max":
            y = F.max_pool2d(t, a["kernel"], a["strides"], p, a["dilations"],
                             ceil_mode=bool(a["ceil_mode"]))
        else:
            y = F.avg_pool2d(t, a["kernel"], a["strides"], p, ceil_mode=bool(a["ceil_mode"]),
                             count_include_pad=bool(a["count_boundary"]))
        return _nhwc(y)

    return Row((f32(*x),), fn, a)


ROWS: dict[str, list[Row]] = {
    "mo.conv2d": [
        _conv_row((1, 6, 6, 3), (3, 3, 3, 4)),
        _conv_row((2, 7, 9, 4), (3, 2, 4, 5), strides=[2, 1], dilations=[1, 2],
                  paddings=[1, 0, 2, 1]),
        _conv_row((1, 6, 5, 6), (3, 3, 1, 6), paddings=[1, 1, 1, 1], groups=6),  # depthwise
        _conv_row((1, 6, 5, 6), (3, 3, 2, 9), paddings=[0, 1, 1, 0], strides=[2, 2],
                  groups=3),
    ],
    "mo.conv3d": [
        Row((f32(2, 5, 4, 6, 3), f32(2, 3, 2, 3, 4)),
            lambda x, w: F.conv3d(
                F.pad(torch.from_numpy(x).permute(0, 4, 1, 2, 3), (1, 0, 0, 1, 2, 1)),
                torch.from_numpy(w).permute(4, 3, 0, 1, 2), stride=(2, 1, 2),
                dilation=(1, 2, 1)).permute(0, 2, 3, 4, 1).contiguous().numpy(),
            {"strides": [2, 1, 2], "dilations": [1, 2, 1], "paddings": [2, 1, 0, 1, 1, 0],
             "groups": 1}, rtol=1e-4, atol=1e-4),
    ],
    "mo.conv2d_transpose": [
        Row((f32(1, 4, 5, 3), f32(3, 3, 2, 3)),
            _conv_transpose({"strides": [2, 1], "dilations": [1, 2], "paddings": [1, 0, 0, 2]}),
            {"strides": [2, 1], "dilations": [1, 2], "paddings": [1, 0, 0, 2]},
            rtol=1e-4, atol=1e-4),
    ],
    "mo.fold": [
        Row((f32(2, 3 * 2 * 3, 5 * 3),),
            lambda x: F.fold(torch.from_numpy(x), (5, 6), (2, 3), dilation=(2, 1), padding=1,
                             stride=(1, 2)).numpy(),
            {"output_size": [5, 6], "kernel": [2, 3], "strides": [1, 2], "dilations": [2, 1],
             "paddings": [1, 1, 1, 1]}),
    ],
    "mo.max_pool2d": [
        _pool_row("max", (1, 8, 8, 3), kernel=[3, 3], strides=[2, 2], paddings=[1, 1, 1, 1],
                  ceil_mode=1),
        _pool_row("max", (2, 9, 8, 2), kernel=[2, 3], strides=[2, 1], dilations=[2, 1]),
    ],
    "mo.avg_pool2d": [
        _pool_row("avg", (1, 8, 8, 3), kernel=[3, 3], strides=[2, 2], paddings=[1, 1, 1, 1],
                  ceil_mode=1),
        _pool_row("avg", (1, 8, 7, 3), kernel=[3, 3], strides=[2, 2], paddings=[1, 1, 1, 1],
                  ceil_mode=1, count_boundary=0),
    ],
}
