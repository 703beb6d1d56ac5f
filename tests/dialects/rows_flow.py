"""Rows for the control-flow ops. Each builds its op with the builder (``Row.build``): the
op names subgraph functions, which a bare ``_add_op`` cannot make. Expected values are plain
Python control flow."""

from __future__ import annotations

from typing import Any

import numpy as np
from mo_op_rows import Row, f32

from max.dtype import DType
from max.graph import DeviceRef, Graph, ops

CPU = DeviceRef.CPU()


def _cond(x: Any, p: Any) -> Any:
    return ops.cond(p, [x.type], lambda: x * 2, lambda: x - 1)[0]


def _while(x: Any, n: Any) -> Any:
    i0 = ops.constant(0, DType.int32, CPU)
    return ops.while_loop([i0, x], lambda i, v: i < n, lambda i, v: [i + 1, v * 1.5])[1]


def _call(x: Any) -> Any:
    sub = Graph.current.add_subgraph("sq", lambda v: v * v + 1, input_types=[x.type])
    return ops.call(sub, x)[0]


def _loop(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    for _ in range(int(n)):
        x = (x * np.float32(1.5)).astype(np.float32)
    return x


X = f32(3)
ROWS: dict[str, list[Row]] = {
    "mo.cond": [Row((X, np.array(p)), lambda x, p: x * 2 if p else x - 1, build=_cond)
                for p in (True, False)],
    "mo.while": [Row((f32(4), np.array(n, np.int32)), _loop, build=_while) for n in (0, 3)],
    "mo.call": [Row((f32(2, 3),), lambda x: np.square(x) + 1, build=_call)],
}
