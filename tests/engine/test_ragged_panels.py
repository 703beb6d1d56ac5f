"""Weights whose column count is not whole panels (compiler/pipelines/ragged_panels): the
panels of the first columns, the rest as a [K, N mod P] tail, each a matmul writing its
columns of C. Against numpy in float64, for rows below, at and past a register tile, static
and symbolic, with the transposed weight of a Linear and a plain [K, N] one."""

from __future__ import annotations

from math import erf

import numpy as np
import pytest

from max.compiler.pipelines import matmul_pack
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, Weight, ops
from max.runtime.layouts import panel_layout

CPU = DeviceRef.CPU()
F32 = DType.float32
P = matmul_pack.PANEL


def _weights(k: int, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32),
            "b": rng.standard_normal(n).astype(np.float32)}


@pytest.mark.parametrize("m,k,n", [
    (1, 768, 385),  # a decode row; 12 panels and 1 column
    (4, 256, 301),  # a tail of 13 columns (AVX2: 18 panels of 16 and 13)
    (7, 383, 385),  # odd rows and K
    (8, 160, 225),
    (33, 64, 130),
    (130, 96, 33),  # one panel and a column
])
def test_linear_with_ragged_columns(m: int, k: int, n: int) -> None:
    """x @ W.T + b, W [n, k]: W stored as ragged panels; the bias a pass of its own."""
    w, b = Weight("w", F32, (n, k)), Weight("b", F32, (n,))
    g = Graph(f"ragged_{m}_{k}_{n}", lambda x: x @ ops.transpose(w, 0, 1) + b,
              input_types=[TensorType(F32, (m, k), CPU)])
    p = _weights(k, n, m + n)
    model = InferenceSession().load(g, weights_registry=p)
    assert model._record.weight_layouts == (panel_layout(P, True), "")
    assert model._record.fallbacks == ()
    x = np.random.default_rng(m).standard_normal((m, k)).astype(np.float32)
    ref = x.astype(np.float64) @ p["w"].T.astype(np.float64) + p["b"]
    np.testing.assert_allclose(model.execute(x)[0].to_numpy(), ref, rtol=1e-4, atol=1e-4)


def test_symbolic_rows_and_a_consumer() -> None:
    """Rows known at run time only, and an activation reading the joined columns."""
    k, n = 128, 2 * P + 5
    w = Weight("w", F32, (n, k))
    g = Graph("ragged_rows", lambda x: ops.gelu(x @ ops.transpose(w, 0, 1)),
              input_types=[TensorType(F32, ("rows", k), CPU)])
    p = _weights(k, n, 3)
    model = InferenceSession().load(g, weights_registry={"w": p["w"]})
    assert model._record.weight_layouts == (panel_layout(P, True),)
    assert model._record.fallbacks == ()
    rng = np.random.default_rng(4)
    for rows in (1, 5, 8, 9, 40, 301):
        x = rng.standard_normal((rows, k)).astype(np.float32)
        y = x.astype(np.float64) @ p["w"].T.astype(np.float64)
        ref = 0.5 * y * (1 + np.vectorize(erf)(y / np.sqrt(2)))
        np.testing.assert_allclose(model.execute(x)[0].to_numpy(), ref, rtol=1e-4, atol=1e-4)


def test_constant_b_with_ragged_columns() -> None:
    """A constant [K, N] B: stored in ragged panels by the compile worker."""
    k, n, m = 200, 3 * P + 7, 6
    rng = np.random.default_rng(5)
    bval = rng.standard_normal((k, n)).astype(np.float32)
    g = Graph("ragged_const", lambda x: x @ ops.constant(bval, F32, CPU),
              input_types=[TensorType(F32, (m, k), CPU)])
    model = InferenceSession().load(g)
    assert model._record.fallbacks == ()
    x = rng.standard_normal((m, k)).astype(np.float32)
    np.testing.assert_allclose(model.execute(x)[0].to_numpy(), x.astype(np.float64) @ bval,
                               rtol=1e-4, atol=1e-4)
