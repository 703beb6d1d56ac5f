"""float8 computes in f32 (decoded exactly, encoded once), against ml_dtypes.

Before, any arithmetic or cast on a float8 tensor crashed the compile worker (SIGSEGV: LLVM has
no float8 types). Casts are covered by test_cast_matrix; here: arithmetic on every code, the
reductions, and ops that compute in f32 inside (matmul, softmax).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from max import driver, engine
from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()
FLOAT8 = [DType.float8_e4m3fn, DType.float8_e4m3fnuz, DType.float8_e5m2, DType.float8_e5m2fnuz]


@pytest.fixture(scope="module")
def session() -> engine.InferenceSession:
    return engine.InferenceSession()


def _same(got: np.ndarray, want_f32: np.ndarray, dtype: DType, what: str) -> None:
    """``got`` equals ``want_f32`` rounded once to ``dtype`` (NaN matches NaN)."""
    want = want_f32.astype(np.float32).astype(dtype.to_numpy())
    assert got.dtype == want.dtype and got.shape == want.shape, what
    g, w = got.astype(np.float32), want.astype(np.float32)
    ok = (g == w) | (np.isnan(g) & np.isnan(w))
    assert ok.all(), f"{what}: got {got[~ok][:5]}, want {want[~ok][:5]}"


@pytest.mark.parametrize("dtype", FLOAT8, ids=lambda d: d.name)
def test_arithmetic_on_every_code(session, dtype: DType) -> None:
    codes = np.arange(256, dtype=np.uint8).view(dtype.to_numpy())
    x = np.repeat(codes, 256)  # every pair of codes
    y = np.tile(codes, 256)
    t = TensorType(dtype, [x.size], CPU)
    model = session.load(Graph("f8_arith", lambda a, b: (a + b, a * b, a - b, ops.max(a, b),
                                                         a > b, ops.relu(a), ops.exp(b)),
                               input_types=[t, t]))
    outs = [o.to_numpy() for o in model.execute(*map(driver.Tensor.from_numpy, (x, y)))]
    a, b = x.astype(np.float32), y.astype(np.float32)
    with np.errstate(all="ignore"):
        for name, got, want in zip(["add", "mul", "sub", "max"], outs, [a + b, a * b, a - b,
                                                                         np.maximum(a, b)]):
            _same(got, want, dtype, name)
        np.testing.assert_array_equal(outs[4], a > b)
        _same(outs[5], np.maximum(a, 0), dtype, "relu")
        _same(outs[6], np.exp(b), dtype, "exp")


@pytest.mark.parametrize("dtype", FLOAT8, ids=lambda d: d.name)
def test_reductions_matmul_softmax(session, dtype: DType) -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-4, 4, (6, 40)).astype(np.float32).astype(dtype.to_numpy())
    w = rng.uniform(-1, 1, (40, 5)).astype(np.float32).astype(dtype.to_numpy())
    model = session.load(Graph(
        "f8_red", lambda v, m: (ops.sum(v), ops.mean(v, axis=0), ops.max(v), ops.min(v, axis=0),
                                ops.argmax(v), ops.argmin(v, axis=0), ops.matmul(v, m),
                                ops.softmax(v)),
        input_types=[TensorType(dtype, [6, 40], CPU), TensorType(dtype, [40, 5], CPU)]))
    outs = [o.to_numpy() for o in model.execute(*map(driver.Tensor.from_numpy, (x, w)))]
    a, m = x.astype(np.float32), w.astype(np.float32)
    _same(outs[0], a.sum(axis=1, keepdims=True), dtype, "sum")
    _same(outs[1], a.mean(axis=0, keepdims=True), dtype, "mean")
    _same(outs[2], a.max(axis=1, keepdims=True), dtype, "max")
    _same(outs[3], a.min(axis=0, keepdims=True), dtype, "min")
    np.testing.assert_array_equal(outs[4], a.argmax(axis=1)[:, None])
    np.testing.assert_array_equal(outs[5], a.argmin(axis=0)[None, :])
    _same(outs[6], a @ m, dtype, "matmul")
    # softmax: exp differs from torch's in the last f32 bits, which may cross a rounding
    # boundary: 1 code apart at most (its results are positive, so codes are ordered).
    want = torch.softmax(torch.from_numpy(a), -1).numpy().astype(dtype.to_numpy())
    codes = lambda v: v.view(np.uint8).astype(int)  # noqa: E731
    assert np.abs(codes(outs[7]) - codes(want)).max() <= 1
