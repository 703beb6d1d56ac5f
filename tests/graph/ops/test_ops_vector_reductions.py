"""Reductions of a whole vector (rank 1): vector code, long static ones split into rows that
threads share (``lowering/reduction.py``), against numpy in float64."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from ops_helpers import shared_session
from test_ops_numeric import check

from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, ops

_OPS: dict[str, tuple[Callable, Callable]] = {
    "sum": (lambda v: ops.sum(v, 0), lambda a: a.sum(0, keepdims=True)),
    "mean": (lambda v: ops.mean(v, 0), lambda a: a.mean(0, keepdims=True)),
    "max": (lambda v: ops.max(v, axis=0), lambda a: a.max(0, keepdims=True)),
    "min": (lambda v: ops.min(v, axis=0), lambda a: a.min(0, keepdims=True)),
    "argmax": (lambda v: ops.argmax(v, 0), lambda a: np.argmax(a, 0, keepdims=True)),
    "argmin": (lambda v: ops.argmin(v, 0), lambda a: np.argmin(a, 0, keepdims=True)),
}
# 1, odd and prime sizes (one row, masked remainders); 65536 and 3 * 65536: rows (64 of them);
# 65537: too odd to split, one long row.
_SIZES = [1, 7, 1000, 65536, 3 * 65536, 65537]


def _model(name: str, dtype: DType, dim: int | str):
    graph = Graph("vector_reduction", _OPS[name][0],
                  input_types=[TensorType(dtype, (dim,), DeviceRef.CPU())])
    return shared_session().load(graph)


@pytest.mark.parametrize("name", sorted(_OPS))
@pytest.mark.parametrize("n", _SIZES)
@pytest.mark.parametrize("symbolic", [False, True])
def test_f32_vector_reductions_match_numpy(name: str, n: int, symbolic: bool) -> None:
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    if n > 2:
        x[n // 3] = 9.5  # one extreme each way, away from the ends
        x[2 * n // 3] = -9.5
    model = _model(name, DType.float32, "n" if symbolic else n)
    assert model._record.fallbacks == ()  # vector code, not a plain loop
    got = model.execute(x)[0].to_numpy()
    ref = _OPS[name][1](x.astype(np.float64))
    if name.startswith("arg"):
        check(got, ref.astype(np.int64))
    else:
        check(got, ref.astype(np.float32), rtol=1e-5, atol=1e-5 * np.sqrt(n))


@pytest.mark.parametrize("name", ["sum", "max", "min", "argmax"])
@pytest.mark.parametrize("n", [1000, 65536 * 2])
def test_integer_vectors(name: str, n: int) -> None:
    x = np.random.default_rng(1).integers(-1000, 1000, n).astype(np.int32)
    model = _model(name, DType.int32, n)
    got = model.execute(x)[0].to_numpy()
    ref = _OPS[name][1](x)
    check(got, ref.astype(np.int64 if name.startswith("arg") else np.int32))


@pytest.mark.parametrize("name", ["max", "min", "argmax", "argmin", "sum"])
@pytest.mark.parametrize("n", [1000, 65536])
def test_a_nan_anywhere_wins(name: str, n: int) -> None:
    """NaN propagates through the rows' partial results as through one row (numpy's answer:
    the extreme is NaN, its position the first NaN)."""
    x = np.random.default_rng(2).standard_normal(n).astype(np.float32)
    x[[n - 5, n // 2 + 3]] = np.nan
    got = _model(name, DType.float32, n).execute(x)[0].to_numpy()
    ref = _OPS[name][1](x)
    if name.startswith("arg"):
        check(got, ref.astype(np.int64))
    else:
        assert got.shape == (1,) and np.isnan(got[0])


def test_float16_sum_accumulates_in_f32() -> None:
    x = np.full(65536 * 2, 0.1, np.float16)
    got = _model("sum", DType.float16, x.size).execute(x)[0].to_numpy()
    ref = x.astype(np.float64).sum(keepdims=True).astype(np.float16)
    check(got, ref, rtol=1e-3, atol=0)


def test_empty_symbolic_vector() -> None:
    """sum of nothing is 0; max of nothing raises (numpy), here at run time."""
    x = np.zeros(0, np.float32)
    check(_model("sum", DType.float32, "n").execute(x)[0].to_numpy(), np.zeros(1, np.float32))
    with pytest.raises(Exception, match="reduce_max: axis 0 of shape \\[n\\] is empty"):
        _model("max", DType.float32, "n").execute(x)
