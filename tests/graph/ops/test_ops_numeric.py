"""Numeric end to end: one graph per op, compiled and run on the CPU, compared to numpy
(float32 and int where meaningful; elementwise ops at two sizes of a symbolic batch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from ops_helpers import shared_session, tt

from max.dtype import DType
from max.graph import Graph, ops

from max import driver
from max.graph import DeviceRef

CPU = DeviceRef.CPU()


def run(fn: Callable[..., Any], types: list, *inputs: np.ndarray) -> list[np.ndarray]:
    """Builds ``fn`` as a graph of ``types``, runs it on ``inputs`` (several input sets may be
    given as tuples) and returns the outputs as numpy arrays."""
    model = shared_session().load(Graph("numeric", fn, input_types=types))
    # np.require, not np.ascontiguousarray: that one makes rank-0 inputs rank 1.
    out = model.execute(*(driver.Tensor.from_numpy(np.require(a, requirements="C"))
                          for a in inputs))
    return [o.to_numpy() for o in out]


def check(got: np.ndarray, expected: np.ndarray, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Shape and dtype first, then values."""
    expected = np.asarray(expected)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


RNG = np.random.default_rng(0)


def _floats(*shape: int, lo: float = -3.0, hi: float = 3.0) -> np.ndarray:
    return RNG.uniform(lo, hi, shape).astype(np.float32)


def _t(fn):
    return lambda x: fn(torch.from_numpy(x)).numpy()


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


UNARY = {
    "abs": (np.abs, {}),
    "cos": (np.cos, {}),
    "erf": (_t(torch.erf), {}),
    "exp": (np.exp, {}),
    "floor": (np.floor, {}),
    "log": (np.log, {"lo": 0.1}),
    "log1p": (np.log1p, {"lo": -0.5}),
    "negate": (np.negative, {}),
    "relu": (lambda x: np.maximum(x, 0), {}),
    "round": (np.round, {}),
    "rsqrt": (lambda x: 1 / np.sqrt(x), {"lo": 0.1}),
    "sigmoid": (_sigmoid, {}),
    "silu": (lambda x: x * _sigmoid(x), {}),
    "sin": (np.sin, {}),
    "sqrt": (np.sqrt, {"lo": 0.0}),
    "tanh": (np.tanh, {}),
    "trunc": (np.trunc, {}),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_float32(name: str) -> None:
    ref, bounds = UNARY[name]
    fn = getattr(ops, name)
    model = shared_session().load(Graph(name, fn, input_types=[tt(DType.float32, "batch", 3)]))
    for batch in (2, 5):
        x = _floats(batch, 3, **bounds)
        (got,) = [o.to_numpy() for o in model.execute(driver.Tensor.from_numpy(x))]
        check(got, ref(x).astype(np.float32), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("approximate", ["none", "tanh", "quick"])
def test_gelu(approximate: str) -> None:
    x = _floats(4, 3)
    (got,) = run(lambda v: ops.gelu(v, approximate), [tt(DType.float32, 4, 3)], x)
    if approximate == "quick":
        expected = x * _sigmoid(1.702 * x)
    else:
        expected = torch.nn.functional.gelu(torch.from_numpy(x), approximate=approximate).numpy()
    check(got, expected, atol=1e-5)


def test_is_nan_is_inf_logical_not() -> None:
    x = np.array([0.0, np.nan, np.inf, -np.inf, 1.0], np.float32)
    got = run(lambda v: (ops.is_nan(v), ops.is_inf(v), ~ops.is_nan(v)), [tt(DType.float32, 5)], x)
    check(got[0], np.isnan(x))
    check(got[1], np.isinf(x))
    check(got[2], ~np.isnan(x))


BINARY_FLOAT = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "mod": np.mod,
    "pow": np.power,
    "max": np.maximum,
    "min": np.minimum,
    "floor_div": np.floor_divide,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
}


@pytest.mark.parametrize("name", sorted(BINARY_FLOAT))
def test_binary_float32_broadcasting(name: str) -> None:
    fn = getattr(ops, name)
    model = shared_session().load(
        Graph(name, lambda a, b: fn(a, b), input_types=[tt(DType.float32, "batch", 1), tt(DType.float32, 3)])
    )
    for batch in (2, 5):
        a = np.round(_floats(batch, 1, lo=0.5, hi=4.0), 1)
        b = np.round(_floats(3, lo=0.5, hi=4.0), 1)
        b[0] = a[0, 0]  # some equal elements for the comparisons
        (got,) = [o.to_numpy() for o in model.execute(*map(driver.Tensor.from_numpy, (a, b)))]
        check(got, BINARY_FLOAT[name](a, b), rtol=1e-5)


BINARY_INT = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "mod": np.mod,
    "max": np.maximum,
    "min": np.minimum,
    "floor_div": np.floor_divide,
    "greater": np.greater,
}


@pytest.mark.parametrize("name", sorted(BINARY_INT))
def test_binary_int32_python_semantics(name: str) -> None:
    a = np.array([[-7], [7], [5]], np.int32)
    b = np.array([2, -3, 4], np.int32)
    (got,) = run(getattr(ops, name), [tt(DType.int32, 3, 1), tt(DType.int32, 3)], a, b)
    check(got, BINARY_INT[name](a, b))


def test_int_true_division_and_scalars() -> None:
    a = np.array([1, -7, 9], np.int32)
    got = run(lambda x: (x / 2, x * 3, 10 - x), [tt(DType.int32, 3)], a)
    check(got[0], a / 2)
    check(got[1], a * np.int32(3))
    check(got[2], np.int32(10) - a)


def test_logical_ops() -> None:
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    got = run(lambda x, y: (ops.logical_and(x, y), ops.logical_or(x, y), ops.logical_xor(x, y)),
              [tt(DType.bool, 4), tt(DType.bool, 4)], a, b)
    check(got[0], a & b)
    check(got[1], a | b)
    check(got[2], a ^ b)


def test_where_cast_constant() -> None:
    x = _floats(2, 3)
    got = run(
        lambda v: (ops.where(v > 0, v, 0.0), ops.cast(v, DType.int32),
                   v + ops.constant(np.arange(3, dtype=np.float32))),
        [tt(DType.float32, 2, 3)], x,
    )
    check(got[0], np.where(x > 0, x, np.float32(0)))
    check(got[1], x.astype(np.int32))
    check(got[2], x + np.arange(3, dtype=np.float32))


@pytest.mark.parametrize(
    ("a", "b"),
    [((2, 3), (3, 4)), ((5, 2, 3), (3, 4)), ((2, 3), (4, 3, 2)), ((3,), (3, 2)), ((2, 3), (3,))],
)
def test_matmul(a, b) -> None:
    x, y = _floats(*a), _floats(*b)
    (got,) = run(ops.matmul, [tt(DType.float32, *a), tt(DType.float32, *b)], x, y)
    check(got, x @ y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [DType.float32, DType.int32])
def test_matmul_rows_of_symbolic_batch_by_weight(dtype) -> None:
    """[b, s, k] @ [k, n] with two symbolic dims is one 2-D matmul over b * s rows."""
    w = (_floats(16, 40) * 4).astype(dtype.to_numpy())
    model = shared_session().load(Graph(
        "rows", lambda x: x @ ops.constant(w, dtype, CPU),
        input_types=[tt(dtype, "b", "s", 16)]))
    for b, s in ((2, 33), (1, 1), (3, 0)):
        x = (np.random.default_rng(b).standard_normal((b, s, 16)) * 4).astype(dtype.to_numpy())
        (got,) = model.execute(x)
        check(got.to_numpy(), x @ w, rtol=1e-4, atol=1e-4)


def test_shape_ops() -> None:
    x = _floats(2, 3, 4)
    got = run(
        lambda v: (
            v.reshape((-1, 4)), ops.flatten(v, 1), ops.unsqueeze(v, 1), ops.squeeze(v[:, :1], 1),
            v.T, ops.permute(v, [2, 0, 1]), ops.broadcast_to(v[:, :1], (2, 3, 4)),
            ops.concat([v, v[:1]], 0), v[1, ::-1, 1:3], v[..., None, -1],
        ),
        [tt(DType.float32, 2, 3, 4)], x,
    )
    expected = [
        x.reshape(-1, 4), x.reshape(2, 12), x[:, None], x[:, 0], x.swapaxes(-1, -2),
        x.transpose(2, 0, 1), np.broadcast_to(x[:, :1], (2, 3, 4)),
        np.concatenate([x, x[:1]], 0), x[1, ::-1, 1:3], x[..., None, -1],
    ]
    for g, e in zip(got, expected, strict=True):
        check(g, e)


def test_gather() -> None:
    x = _floats(5, 3)
    idx = np.array([[4, 0], [-1, 2]], np.int64)
    (got,) = run(lambda v, i: ops.gather(v, i, 0), [tt(DType.float32, 5, 3), tt(DType.int64, 2, 2)], x, idx)
    check(got, np.take(x, idx, 0))


REDUCTIONS = {
    "sum": (lambda v, a: ops.sum(v, a), np.sum),
    "mean": (lambda v, a: ops.mean(v, a), np.mean),
    "max": (lambda v, a: ops.max(v, axis=a), np.max),
    "min": (lambda v, a: ops.min(v, axis=a), np.min),
    "argmax": (lambda v, a: ops.argmax(v, a), np.argmax),
    "argmin": (lambda v, a: ops.argmin(v, a), np.argmin),
}


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions(name: str, axis: int) -> None:
    x = _floats(3, 4)
    build, ref = REDUCTIONS[name]
    (got,) = run(lambda v: build(v, axis), [tt(DType.float32, 3, 4)], x)
    check(got, ref(x, axis=axis, keepdims=True), rtol=1e-5, atol=1e-6)


def test_argmax_and_argmin_in_one_graph() -> None:
    """Two reductions whose inits CSE merges must still write their own outputs."""
    x = _floats(3, 4)
    got = run(lambda v: (ops.argmax(v, 0), ops.argmin(v, 0)), [tt(DType.float32, 3, 4)], x)
    check(got[0], x.argmax(0, keepdims=True))
    check(got[1], x.argmin(0, keepdims=True))


def test_softmax_and_layer_norm() -> None:
    x = _floats(4, 8)
    gamma, beta = _floats(8), _floats(8)
    got = run(
        lambda v, g, b: (ops.softmax(v), ops.logsoftmax(v, 0), ops.layer_norm(v, g, b, 1e-5)),
        [tt(DType.float32, 4, 8), tt(DType.float32, 8), tt(DType.float32, 8)], x, gamma, beta,
    )
    tx = torch.from_numpy(x)
    check(got[0], torch.softmax(tx, -1).numpy(), atol=1e-6)
    check(got[1], torch.log_softmax(tx, 0).numpy(), atol=1e-5)
    expected = torch.nn.functional.layer_norm(tx, (8,), torch.from_numpy(gamma), torch.from_numpy(beta), 1e-5)
    check(got[2], expected.numpy(), atol=1e-5)
