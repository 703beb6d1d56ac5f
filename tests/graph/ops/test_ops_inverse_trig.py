"""acos (``mo.acos``, clamping to [-1, 1] as MAX documents) and atanh (a log1p composite):
values against PyTorch in float32/float64/float16, special values, dtype errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ops_helpers import result_type, tt
from test_ops_numeric import check, run

from max.dtype import DType
from max.graph import ops

RNG = np.random.default_rng(3)

_TORCH = {DType.float32: torch.float32, DType.float64: torch.float64,
          DType.float16: torch.float16}


@pytest.mark.parametrize("dtype", [DType.float32, DType.float64, DType.float16])
def test_acos_matches_torch(dtype: DType) -> None:
    x = RNG.uniform(-1, 1, (4, 5)).astype(dtype.to_numpy())
    x.reshape(-1)[:4] = [-1.0, 1.0, 0.0, -0.0]
    (got,) = run(ops.acos, [tt(dtype, "n", 5)], x)
    want = torch.acos(torch.from_numpy(x).to(torch.float64)).to(_TORCH[dtype]).numpy()
    check(got, want, rtol={DType.float16: 1e-3, DType.float32: 1e-6}.get(dtype, 1e-14))


def test_acos_clamps_outside_the_domain() -> None:
    x = np.array([-5.0, -1.0000001, 1.5, np.inf, -np.inf, np.nan], np.float32)
    (got,) = run(ops.acos, [tt(DType.float32, 6)], x)
    check(got, np.array([np.pi, np.pi, 0, 0, np.pi, np.nan], np.float32))


@pytest.mark.parametrize("dtype", [DType.float32, DType.float64, DType.float16])
def test_atanh_matches_torch(dtype: DType) -> None:
    x = RNG.uniform(-0.999, 0.999, (3, 7)).astype(dtype.to_numpy())
    x.reshape(-1)[:3] = [1e-4, -3e-6, 0.0]  # log1p keeps tiny values exact
    (got,) = run(ops.atanh, [tt(dtype, "n", 7)], x)
    want = torch.atanh(torch.from_numpy(x).to(torch.float64)).to(_TORCH[dtype]).numpy()
    check(got, want, rtol={DType.float16: 2e-3, DType.float32: 2e-6}.get(dtype, 1e-13),
          atol=0)


def test_atanh_special_values() -> None:
    x = np.array([1.0, -1.0, 1.5, -2.0, np.nan, 0.0], np.float64)
    (got,) = run(ops.atanh, [tt(DType.float64, 6)], x)
    with np.errstate(divide="ignore", invalid="ignore"):
        check(got, np.arctanh(x))


def test_dtype_errors() -> None:
    with pytest.raises(ValueError, match="acos: expected a floating-point dtype, got int32"):
        result_type([tt(DType.int32, 2)], ops.acos)
    with pytest.raises(ValueError, match="atanh: expected a floating-point dtype, got int64"):
        result_type([tt(DType.int64, 2)], ops.atanh)
    with pytest.raises(TypeError, match="atanh: x must be a graph value"):
        result_type([], lambda: ops.atanh(0.5))
    assert result_type([tt(DType.bfloat16, "n")], ops.atanh).dtype == DType.bfloat16
