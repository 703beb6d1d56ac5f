"""Numeric rows for mo.transfer (a copy; the result type is on the same CPU here, the
graph tests move between cpu:0 and cpu:1). mo.print has no row: its effect is standard
output (tests/dialects/test_opdefs.py, NO_ROW; tests/graph/ops/test_ops_devices.py)."""

from __future__ import annotations

import numpy as np
from mo_op_rows import Row

from max.dtype import DType

_RNG = np.random.default_rng(7)  # its own: see rows_buffers.py

ROWS: dict[str, list[Row]] = {
    "mo.transfer": [
        Row((_RNG.uniform(-3, 3, (3, 5)).astype(np.float32),), lambda x: np.array(x),
            result=(DType.float32, (3, 5))),
        Row((_RNG.integers(0, 2, (4,)).astype(np.bool_),), lambda x: np.array(x),
            result=(DType.bool, (4,))),
    ],
}
