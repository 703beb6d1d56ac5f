"""Sample data the driver tests share."""

from __future__ import annotations

import numpy as np

from max.dtype import DType

# The dtypes numpy holds natively (and speaks DLPack for); the rest come from ml_dtypes.
NUMPY_NATIVE = [
    DType.bool, DType.int8, DType.int16, DType.int32, DType.int64, DType.uint8,
    DType.uint16, DType.uint32, DType.uint64, DType.float16, DType.float32, DType.float64,
]


def sample(dtype: DType, shape: tuple[int, ...]) -> np.ndarray:
    """Values every dtype represents exactly: small non-negative integers (or bools)."""
    values = np.asarray(np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape) % 5)
    if dtype is DType.bool:
        return np.asarray(values % 2 == 1)
    return np.asarray(values.astype(dtype.to_numpy()))
