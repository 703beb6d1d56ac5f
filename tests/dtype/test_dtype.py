"""DType: reference values, predicates, sizes, numpy/torch conversions."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

from max.dtype import DType

REFERENCE_VALUES = {
    "bool": 1, "int8": 135, "int16": 137, "int32": 139, "int64": 141, "uint8": 134,
    "uint16": 136, "uint32": 138, "uint64": 140, "float16": 79, "bfloat16": 80, "float32": 81,
    "float64": 82, "float8_e4m3fn": 75, "float8_e4m3fnuz": 76, "float8_e5m2": 77,
    "float8_e5m2fnuz": 78, "float4_e2m1fn": 64,
}


def test_all_18_dtypes_with_reference_values() -> None:
    assert {d.name: d.value for d in DType} == REFERENCE_VALUES


@pytest.mark.parametrize("dtype", list(DType), ids=lambda d: d.name)
def test_numpy_round_trip_and_size(dtype: DType) -> None:
    np_dtype = dtype.to_numpy()
    assert DType.from_numpy(np_dtype) is dtype
    expected_bits = 4 if dtype is DType.float4_e2m1fn else np_dtype.itemsize * 8
    assert dtype.size_in_bits == expected_bits
    assert dtype.size_in_bytes == np_dtype.itemsize
    assert dtype.align == np_dtype.itemsize


def test_ml_dtypes_for_bfloat16_and_float8() -> None:
    assert DType.bfloat16.to_numpy() == np.dtype(ml_dtypes.bfloat16)
    assert DType.float8_e4m3fn.to_numpy() == np.dtype(ml_dtypes.float8_e4m3fn)
    assert DType.from_numpy(ml_dtypes.float8_e5m2fnuz) is DType.float8_e5m2fnuz


def test_predicates() -> None:
    floats = {d for d in DType if d.is_float()}
    assert floats == {
        DType.float16, DType.bfloat16, DType.float32, DType.float64, DType.float4_e2m1fn,
        DType.float8_e4m3fn, DType.float8_e4m3fnuz, DType.float8_e5m2, DType.float8_e5m2fnuz,
    }
    assert {d for d in DType if d.is_float8()} == {
        DType.float8_e4m3fn, DType.float8_e4m3fnuz, DType.float8_e5m2, DType.float8_e5m2fnuz
    }
    assert {d for d in DType if d.is_half()} == {DType.float16, DType.bfloat16}
    signed = {d for d in DType if d.is_signed_integral()}
    unsigned = {d for d in DType if d.is_unsigned_integral()}
    assert signed == {DType.int8, DType.int16, DType.int32, DType.int64}
    assert unsigned == {DType.uint8, DType.uint16, DType.uint32, DType.uint64}
    assert {d for d in DType if d.is_integral()} == signed | unsigned
    assert not DType.bool.is_integral() and not DType.bool.is_float()


@pytest.mark.parametrize("dtype", [d for d in DType if d is not DType.float4_e2m1fn],
                         ids=lambda d: d.name)
def test_torch_round_trip(dtype: DType) -> None:
    t = dtype.to_torch()
    assert isinstance(t, torch.dtype)
    assert DType.from_torch(t) is dtype
    assert torch.empty(0, dtype=t).element_size() == dtype.size_in_bytes


def test_errors() -> None:
    with pytest.raises(ValueError, match="unsupported numpy dtype"):
        DType.from_numpy(np.complex64)
    with pytest.raises(ValueError, match="unsupported torch dtype"):
        DType.from_torch(torch.complex64)
    with pytest.raises(ValueError, match="no torch equivalent"):
        DType.float4_e2m1fn.to_torch()
