"""Numeric rows of mo.dequantize and mo.qmatmul: expected values from the ``gguf`` package's
own dequantization (``gguf.quants.dequantize``), test data from ``gguf.quants.quantize`` where
gguf has a quantizer, else random blocks with finite float16 scales."""

from __future__ import annotations

import gguf
import numpy as np
from mo_op_rows import RNG, Row, f32

# encoding attribute -> (gguf type, elements per block, bytes per block, float16 fields' offsets)
_ENC = {
    "q4_0": (gguf.GGMLQuantizationType.Q4_0, 32, 18, (0,)),
    "q4_1": (gguf.GGMLQuantizationType.Q4_1, 32, 20, (0, 2)),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, 32, 34, (0,)),
    "q4_k": (gguf.GGMLQuantizationType.Q4_K, 256, 144, (0, 2)),
    "q5_k": (gguf.GGMLQuantizationType.Q5_K, 256, 176, (0, 2)),
    "q6_k": (gguf.GGMLQuantizationType.Q6_K, 256, 210, (208,)),
}


def blocks(enc: str, rows: int, nblocks: int) -> np.ndarray:
    """[rows, nblocks * bytes] uint8 of random blocks whose float16 scales are finite."""
    _, _, nbytes, halves = _ENC[enc]
    b = RNG.integers(0, 256, (rows, nblocks, nbytes), dtype=np.uint8)
    for at in halves:
        scale = RNG.uniform(-0.05, 0.05, (rows, nblocks)).astype(np.float16)
        b[..., at:at + 2] = scale[..., None].view(np.uint8)
    return b.reshape(rows, nblocks * nbytes)


def _dequantize(enc: str):  # type: ignore[no-untyped-def]
    return lambda x: gguf.quants.dequantize(x, _ENC[enc][0])


def _qmatmul(enc: str):  # type: ignore[no-untyped-def]
    return lambda a, w: (a.astype(np.float64) @ gguf.quants.dequantize(w, _ENC[enc][0])
                         .astype(np.float64).T).astype(np.float32)


_Q4_0 = gguf.quants.quantize(f32(6, 64), gguf.GGMLQuantizationType.Q4_0)
_RAW = RNG.integers(0, 256, (2, 3 * 34), dtype=np.uint8)  # any byte pattern, inf/nan scales too

ROWS: dict[str, list[Row]] = {
    "mo.dequantize": [
        Row((_Q4_0,), _dequantize("q4_0"), {"encoding": "q4_0"}, rtol=0, atol=0),
        Row((_RAW,), _dequantize("q8_0"), {"encoding": "q8_0"}, rtol=0, atol=0),
        *(Row((blocks(enc, 3, 2),), _dequantize(enc), {"encoding": enc}, rtol=0, atol=0)
          for enc in ("q4_1", "q4_k", "q5_k", "q6_k")),
    ],
    "mo.qmatmul": [
        Row((f32(3, 64), _Q4_0), _qmatmul("q4_0"), {"encoding": "q4_0"}, rtol=1e-5, atol=1e-5),
        Row((f32(2, 2, 256), blocks("q4_k", 5, 1)), _qmatmul("q4_k"), {"encoding": "q4_k"},
            rtol=1e-5, atol=1e-4),
        Row((f32(4, 512), blocks("q6_k", 3, 2)), _qmatmul("q6_k"), {"encoding": "q6_k"},
            rtol=1e-5, atol=1e-4),
    ],
}
