"""The ``DType`` enum: the 18 element types of MAX tensors, with numpy and torch conversion."""

from __future__ import annotations

import builtins
import enum
from functools import cache
from typing import Any

import ml_dtypes
import numpy as np


class DType(enum.Enum):
    """The tensor data type.

    Example:
        >>> import numpy as np
        >>> from max.dtype import DType
        >>> DType.float32.to_numpy()
        dtype('float32')
        >>> DType.from_numpy(np.dtype(np.float16))
        <DType.float16: 79>
        >>> DType.float64.size_in_bytes
        8
    """

    bool = 1
    int8 = 135
    int16 = 137
    int32 = 139
    int64 = 141
    uint8 = 134
    uint16 = 136
    uint32 = 138
    uint64 = 140
    float16 = 79
    bfloat16 = 80
    float32 = 81
    float64 = 82
    float8_e4m3fn = 75
    float8_e4m3fnuz = 76
    float8_e5m2 = 77
    float8_e5m2fnuz = 78
    float4_e2m1fn = 64

    def __repr__(self) -> str:
        return f"<DType.{self.name}: {self.value}>"

    def is_float(self) -> builtins.bool:
        """Checks if the data type is a floating-point type."""
        return self in _FLOATS

    def is_float8(self) -> builtins.bool:
        """Checks if the data type is an 8-bit floating-point type."""
        return self in _FLOAT8

    def is_half(self) -> builtins.bool:
        """Checks if the data type is a half-precision floating-point type."""
        return self in (DType.float16, DType.bfloat16)

    def is_integral(self) -> builtins.bool:
        """Checks if the data type is an integer type."""
        return self in _SIGNED or self in _UNSIGNED

    def is_signed_integral(self) -> builtins.bool:
        """Checks if the data type is a signed integer type."""
        return self in _SIGNED

    def is_unsigned_integral(self) -> builtins.bool:
        """Checks if the data type is an unsigned integer type."""
        return self in _UNSIGNED

    @property
    def size_in_bits(self) -> int:
        """Returns the size of the data type in bits."""
        return _BITS[self]

    @property
    def size_in_bytes(self) -> int:
        """Returns the size of the data type in bytes (a sub-byte type takes one byte)."""
        return max(1, _BITS[self] // 8)

    @property
    def align(self) -> int:
        """Returns the alignment requirement of the data type in bytes."""
        return self.size_in_bytes

    def to_numpy(self) -> np.dtype:
        """Converts this ``DType`` to the corresponding NumPy dtype.

        Raises:
            ValueError: If the dtype is not supported.
        """
        return _NUMPY[self]

    @classmethod
    def from_numpy(cls, dtype: Any) -> DType:
        """Converts a NumPy dtype to the corresponding DType.

        Raises:
            ValueError: If the input dtype is not supported.
        """
        try:
            return _FROM_NUMPY[np.dtype(dtype)]
        except (KeyError, TypeError):
            raise ValueError(f"unsupported numpy dtype: {dtype!r}") from None

    def to_torch(self, _error: Exception | None = None) -> Any:
        """Converts this ``DType`` to the corresponding ``torch.dtype``."""
        table = _torch_tables()[0]
        if self not in table:
            raise _error or ValueError(f"DType.{self.name} has no torch equivalent")
        return table[self]

    @classmethod
    def from_torch(cls, dtype: Any, _error: Exception | None = None) -> DType:
        """Converts a ``torch.dtype`` to the corresponding DType."""
        table = _torch_tables()[1]
        if dtype not in table:
            raise _error or ValueError(f"unsupported torch dtype: {dtype!r}")
        return table[dtype]


_SIGNED = frozenset({DType.int8, DType.int16, DType.int32, DType.int64})
_UNSIGNED = frozenset({DType.uint8, DType.uint16, DType.uint32, DType.uint64})
_FLOAT8 = frozenset(
    {DType.float8_e4m3fn, DType.float8_e4m3fnuz, DType.float8_e5m2, DType.float8_e5m2fnuz}
)
_FLOATS = _FLOAT8 | {
    DType.float16, DType.bfloat16, DType.float32, DType.float64, DType.float4_e2m1fn
}

_BITS = {
    DType.bool: 8,
    DType.int8: 8, DType.int16: 16, DType.int32: 32, DType.int64: 64,
    DType.uint8: 8, DType.uint16: 16, DType.uint32: 32, DType.uint64: 64,
    DType.float16: 16, DType.bfloat16: 16, DType.float32: 32, DType.float64: 64,
    DType.float8_e4m3fn: 8, DType.float8_e4m3fnuz: 8, DType.float8_e5m2: 8,
    DType.float8_e5m2fnuz: 8, DType.float4_e2m1fn: 4,
}

_NUMPY: dict[DType, np.dtype] = {
    DType.bool: np.dtype(np.bool_),
    DType.int8: np.dtype(np.int8),
    DType.int16: np.dtype(np.int16),
    DType.int32: np.dtype(np.int32),
    DType.int64: np.dtype(np.int64),
    DType.uint8: np.dtype(np.uint8),
    DType.uint16: np.dtype(np.uint16),
    DType.uint32: np.dtype(np.uint32),
    DType.uint64: np.dtype(np.uint64),
    DType.float16: np.dtype(np.float16),
    DType.bfloat16: np.dtype(ml_dtypes.bfloat16),
    DType.float32: np.dtype(np.float32),
    DType.float64: np.dtype(np.float64),
    DType.float8_e4m3fn: np.dtype(ml_dtypes.float8_e4m3fn),
    DType.float8_e4m3fnuz: np.dtype(ml_dtypes.float8_e4m3fnuz),
    DType.float8_e5m2: np.dtype(ml_dtypes.float8_e5m2),
    DType.float8_e5m2fnuz: np.dtype(ml_dtypes.float8_e5m2fnuz),
    DType.float4_e2m1fn: np.dtype(ml_dtypes.float4_e2m1fn),
}
_FROM_NUMPY = {v: k for k, v in _NUMPY.items()}


@cache
def _torch_tables() -> tuple[dict[DType, Any], dict[Any, DType]]:
    import torch  # only when asked: torch is optional

    names = {
        DType.bool: "bool", DType.int8: "int8", DType.int16: "int16", DType.int32: "int32",
        DType.int64: "int64", DType.uint8: "uint8", DType.uint16: "uint16",
        DType.uint32: "uint32", DType.uint64: "uint64", DType.float16: "float16",
        DType.bfloat16: "bfloat16", DType.float32: "float32", DType.float64: "float64",
        DType.float8_e4m3fn: "float8_e4m3fn", DType.float8_e4m3fnuz: "float8_e4m3fnuz",
        DType.float8_e5m2: "float8_e5m2", DType.float8_e5m2fnuz: "float8_e5m2fnuz",
    }
    to_torch = {d: getattr(torch, n) for d, n in names.items() if hasattr(torch, n)}
    return to_torch, {v: k for k, v in to_torch.items()}
