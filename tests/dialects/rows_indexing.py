"""Numeric rows of the indexing MO ops (argsort, gather_nd, scatter, scatter_nd,
repeat_interleave, nonzero), expected values from PyTorch or plain Python loops."""

from __future__ import annotations

import numpy as np
import torch
from mo_op_rows import Row, f32, i32, t

from max.dtype import DType

_TIES = np.array([[3, 1, 3, 2, 1, 3], [0, 0, -1, 5, 5, 0]], np.int32)
_NAN = np.array([[1.5, np.nan, -2.0, np.nan, 1.5, 0.0]], np.float32)


def _sort(descending: bool, keep: int | None = None, dim: int = -1):
    def fn(x: torch.Tensor) -> torch.Tensor:
        idx = torch.sort(x, dim=dim, descending=descending, stable=True).indices
        return idx if keep is None else idx.narrow(dim, 0, keep)
    return t(fn)


def _scatter_loop(x: np.ndarray, updates: np.ndarray, indices: np.ndarray,
                  axis: int) -> np.ndarray:
    out = x.copy()
    for pos in np.ndindex(*indices.shape):
        dst = list(pos)
        dst[axis] = int(indices[pos]) % x.shape[axis]
        out[tuple(dst)] = updates[pos]
    return out


ROWS: dict[str, list[Row]] = {
    "mo.argsort": [
        Row((_TIES,), _sort(False), {"axis": 1, "descending": 0},
            result=(DType.int64, (2, 6))),
        Row((_TIES,), _sort(True, 4), {"axis": 1, "descending": 1},
            result=(DType.int64, (2, 4))),
        Row((_NAN,), _sort(True), {"axis": 1, "descending": 1}, result=(DType.int64, (1, 6))),
        Row((_NAN,), _sort(False), {"axis": 1, "descending": 0}, result=(DType.int64, (1, 6))),
        Row((f32(5, 3),), _sort(False, 2, 0), {"axis": 0, "descending": 0},
            result=(DType.int64, (2, 3))),
    ],
    "mo.gather_nd": [
        Row((f32(4, 3, 2), np.array([[3, 0], [-1, 2], [0, -3]], np.int64)),
            lambda x, i: x[[3, 3, 0], [0, 2, 0]], {"batch_dims": 0}),
        Row((f32(2, 4, 3), np.array([[[1], [3]], [[0], [0]]], np.int32)),
            lambda x, i: np.stack([x[0][[1, 3]], x[1][[0, 0]]]), {"batch_dims": 1}),
    ],
    "mo.scatter": [
        Row((f32(3, 5), f32(3, 2), np.array([[4, 0], [-1, 1], [2, 2]], np.int64)),
            lambda x, u, i: _scatter_loop(x, u, i, 1), {"axis": 1}),
        Row((i32(4, 3), i32(2, 3), np.array([[1, 0, 3], [2, 3, 0]], np.int32)),
            t(lambda x, u, i: x.scatter(0, i.long(), u)), {"axis": 0}),
    ],
    "mo.scatter_nd": [
        Row((f32(4, 3), f32(2, 3), np.array([[2], [0]], np.int64)),
            t(lambda x, u, i: x.index_put((i[:, 0],), u)), {}),
        Row((f32(4, 3), f32(3), np.array([[1, 2], [3, -1], [0, 0]], np.int32)),
            t(lambda x, u, i: x.index_put((i[:, 0].long(), i[:, 1].long() % 3), u)), {}),
    ],
    "mo.repeat_interleave": [
        Row((f32(3, 2), np.array([2, 0, 3], np.int64)),
            t(lambda x, r: torch.repeat_interleave(x, r, dim=0)), {"axis": 0},
            result=(DType.float32, (5, 2))),
        Row((i32(2, 3), np.array([2], np.uint8)),
            t(lambda x, r: torch.repeat_interleave(x, r.long(), dim=1)), {"axis": 1},
            result=(DType.int32, (2, 6))),
    ],
    # A static count: checked at run time (the symbolic, data-bound count is tested in
    # tests/graph/ops/test_ops_data_sizes.py).
    "mo.nonzero": [
        Row((np.array([[0.0, np.nan, -0.0], [2.5, 0.0, -1.0]], np.float32),),
            t(lambda x: torch.nonzero(x)), result=(DType.int64, (3, 2))),
        Row((np.array([[[True, False], [False, True]], [[True, True], [False, False]]]),),
            t(lambda x: torch.nonzero(x)), result=(DType.int64, (4, 3))),
        Row((np.array(7, np.int32),), t(lambda x: torch.nonzero(x)),
            result=(DType.int64, (1, 0))),
    ],
}
