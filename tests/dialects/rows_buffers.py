"""Numeric rows for the buffer ops. The buffer input is a BufferType (updated in place);
a store's row expects the buffer's contents after the op, computed with numpy slice
assignment. mo.buffer_create has no row (tests/dialects/test_opdefs.py, NO_ROW)."""

from __future__ import annotations

import numpy as np
from mo_op_rows import Row

# Its own generator: drawing from mo_op_rows' shared one would change the inputs of the
# families imported after this file (and the tolerances tuned on them).
_RNG = np.random.default_rng(6)


def f32(*shape: int) -> np.ndarray:
    return _RNG.uniform(-3.0, 3.0, shape).astype(np.float32)


def i32(*shape: int) -> np.ndarray:
    return _RNG.integers(-20, 20, shape).astype(np.int32)


def _assigned(buffer: np.ndarray, index: tuple[slice, ...], x: np.ndarray) -> np.ndarray:
    out = buffer.copy()
    out[index] = x
    return out


ROWS: dict[str, list[Row]] = {
    "mo.buffer_load": [
        Row((f32(3, 4),), lambda b: b.copy(), buffers=(0,)),
        Row((i32(2, 0, 5),), lambda b: b.copy(), buffers=(0,)),
    ],
    "mo.buffer_store": [
        Row((f32(3, 4), f32(3, 4)), lambda b, x: x.copy(), buffers=(0,)),
        Row((i32(5), i32(5)), lambda b, x: x.copy(), buffers=(0,)),
    ],
    "mo.buffer_store_slice": [
        Row((f32(6, 5), f32(2, 3)),
            lambda b, x: _assigned(b, (slice(1, 5, 2), slice(2, 5)), x),
            attrs={"starts": [1, 2], "steps": [2, 1]}, buffers=(0,)),
        Row((i32(4, 7), i32(1, 7)),
            lambda b, x: _assigned(b, (slice(3, 4), slice(None)), x),
            attrs={"starts": [3, 0], "steps": [1, 1]}, buffers=(0,)),
        Row((f32(8), f32(3)), lambda b, x: _assigned(b, (slice(1, 8, 3),), x),
            attrs={"starts": [1], "steps": [3]}, buffers=(0,)),
    ],
}
