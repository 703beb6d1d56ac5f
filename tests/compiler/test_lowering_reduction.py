"""Reductions, normalizations, matmul, gather and constants through a .so vs numpy."""

from __future__ import annotations

import numpy as np
import pytest
from mo_helpers import Compiled, NP_DTYPES, check, mo_type, one_op_module, run_one

from max.compiler.pipelines.cpu import have_system_linker

pytestmark = pytest.mark.skipif(not have_system_linker(), reason="no system linker")

REDUCE = {"reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max,
          "reduce_min": np.min}


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("op", sorted(REDUCE))
def test_reduce_float_symbolic(op: str, axis: int) -> None:
    out_dims = ("n", 1) if axis == 1 else (1, 5)
    c = Compiled(one_op_module(op, [("f32", ("n", 5))], ("f32", out_dims), f"axis = {axis} : i64"))
    rng = np.random.default_rng(2)
    for n in (3, 7):
        x = rng.standard_normal((n, 5)).astype(np.float32)
        shape = (n, 1) if axis == 1 else (1, 5)
        (out,), _ = c([x], [(shape, "float32")])
        check(out, REDUCE[op](x, axis=axis, keepdims=True), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("elt", ["si32", "ui8", "si64"])
@pytest.mark.parametrize("op", ["reduce_sum", "reduce_max", "reduce_min"])
def test_reduce_int(op: str, elt: str) -> None:
    dt = NP_DTYPES[elt]
    x = (np.arange(12).reshape(3, 4) * 7 % 11).astype(dt)
    if dt != "uint8":
        x = x - 5
    out, _ = run_one(op, [(elt, (3, 4))], (elt, (3, 1)), [x], (3, 1), "axis = 1 : i64")
    check(out, REDUCE[op](x, axis=1, keepdims=True).astype(dt))


def test_reduce_max_nan_propagates() -> None:
    x = np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 0.5]], np.float32)
    out, _ = run_one("reduce_max", [("f32", (2, 3))], ("f32", (2, 1)), [x], (2, 1),
                     "axis = 1 : i64")
    check(out, np.max(x, axis=1, keepdims=True))


@pytest.mark.parametrize("op,ref", [("argmax", np.argmax), ("argmin", np.argmin)])
def test_arg_first_occurrence(op: str, ref) -> None:
    x = np.array([[1, 3, 3, 0], [5, 5, 5, 5], [-1, -4, 2, -4]], np.float32)
    x2 = np.array([[1, np.nan, 3, np.nan], [-np.inf, -np.inf, 0, 0], [0, 0, 0, 0]], np.float32)
    c = Compiled(one_op_module(op, [("f32", ("n", 4))], ("si64", ("n", 1)), "axis = 1 : i64"))
    for arr in (x, x2):
        (out,), _ = c([arr], [((3, 1), "int64")])
        check(out, ref(arr, axis=1, keepdims=True))
    xi = x.astype(np.int32).T.copy()
    out, _ = run_one(op, [("si32", (4, 3))], ("si32", (1, 3)), [xi], (1, 3), "axis = 0 : i64")
    check(out, ref(xi, axis=0, keepdims=True).astype(np.int32))


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [0, 1])
def test_softmax_logsoftmax(axis: int) -> None:
    rng = np.random.default_rng(3)
    for op in ("softmax", "logsoftmax"):
        c = Compiled(one_op_module(op, [("f32", ("n", 6))], ("f32", ("n", 6)),
                                   f"axis = {axis} : i64"))
        for n in (2, 5):
            x = (rng.standard_normal((n, 6)) * 30).astype(np.float32)  # large: needs stability
            (out,), _ = c([x], [((n, 6), "float32")])
            ref = _softmax(x.astype(np.float64), axis)
            ref = np.log(ref) if op == "logsoftmax" else ref
            check(out, ref.astype(np.float32), rtol=1e-5, atol=1e-6)


def test_layer_norm() -> None:
    tx, tg = mo_type("f32", ("n", 3, 4)), mo_type("f32", (3, 4))
    text = (f"func.func @g(%x: {tx}, %g: {tg}, %b: {tg}) -> {tx} attributes {{mo.graph}} {{\n"
            f'  %r = "mo.layer_norm"(%x, %g, %b) {{epsilon = 1.0e-05 : f32}} : ({tx}, {tg}, {tg})'
            f" -> {tx}\n  func.return %r : {tx}\n}}\n")
    c = Compiled(text)
    rng = np.random.default_rng(4)
    g = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((3, 4)).astype(np.float32)
    for n in (1, 4):
        x = (rng.standard_normal((n, 3, 4)) * 5 + 10).astype(np.float32)
        (out,), _ = c([x, g, b], [((n, 3, 4), "float32")])
        mean = x.mean(axis=(1, 2), keepdims=True)
        var = x.var(axis=(1, 2), keepdims=True)
        check(out, ((x - mean) / np.sqrt(var + 1e-5) * g + b).astype(np.float32),
              rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("elt", ["f32", "si32"])
def test_matmul_2d_symbolic(elt: str) -> None:
    dt = NP_DTYPES[elt]
    c = Compiled(one_op_module("matmul", [(elt, ("m", 5)), (elt, (5, "n"))], (elt, ("m", "n"))))
    rng = np.random.default_rng(5)
    for m, n in ((3, 4), (17, 33)):
        a = (rng.standard_normal((m, 5)) * 4).astype(dt)
        b = (rng.standard_normal((5, n)) * 4).astype(dt)
        (out,), _ = c([a, b], [((m, n), dt)])
        check(out, a @ b, rtol=1e-5, atol=1e-5)


def test_matmul_batched_and_rank2_rhs() -> None:
    rng = np.random.default_rng(6)
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    b = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    out, _ = run_one("matmul", [("f32", (2, 3, 4, 5)), ("f32", (2, 3, 5, 6))],
                     ("f32", (2, 3, 4, 6)), [a, b], (2, 3, 4, 6))
    check(out, a @ b, rtol=1e-5, atol=1e-5)
    w = rng.standard_normal((5, 6)).astype(np.float32)
    out, _ = run_one("matmul", [("f32", (2, 3, 4, 5)), ("f32", (5, 6))],
                     ("f32", (2, 3, 4, 6)), [a, w], (2, 3, 4, 6))
    check(out, a @ w, rtol=1e-5, atol=1e-5)


def test_gather_wraps_and_reports() -> None:
    c = Compiled(one_op_module("gather", [("f32", ("n", 3)), ("si64", (2, "k"))],
                               ("f32", (2, "k", 3)), "axis = 0 : i64"))
    for n in (4, 6):
        x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
        idx = np.array([[0, -1, 2], [-n, n - 1, 1]])
        (out,), failed = c([x, idx], [((2, 3, 3), "float32")])
        check(out, np.take(x, idx, axis=0))
        assert failed == []
    for bad in (n, -n - 1, 10**12):
        idx = np.array([[0, bad, 1], [1, 1, 1]])
        (out,), failed = c([x, idx], [((2, 3, 3), "float32")])
        assert len(failed) == 1 and "mo.gather" in failed[0] and "out of range" in failed[0]
        check(out[0, 0], x[0])  # the valid reads are still right


def test_gather_middle_axis_and_empty_source() -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    idx = np.array([2, 0], np.int32)
    out, failed = run_one("gather", [("f32", (2, 3, 4)), ("si32", (2,))], ("f32", (2, 2, 4)),
                          [x, idx], (2, 2, 4), "axis = 1 : i64")
    check(out, np.take(x, idx, axis=1))
    assert not failed
    c = Compiled(one_op_module("gather", [("f32", ("n", 3)), ("si64", (2,))], ("f32", (2, 3)),
                               "axis = 0 : i64"))
    (out,), failed = c([np.zeros((0, 3), np.float32), np.array([0, 0])], [((2, 3), "float32")])
    assert len(failed) == 1  # nothing was read from the empty source


def test_constant_signed_and_bool() -> None:
    t = mo_type("si32", (2, 2))
    tb = mo_type("i1", (3,))
    text = (f"func.func @g(%x: {t}) -> ({t}, {tb}) attributes {{mo.graph}} {{\n"
            f'  %c = "mo.constant"() {{value = dense<[[1, -2], [3, 4]]> : tensor<2x2xsi32>}} : () -> {t}\n'
            f'  %b = "mo.constant"() {{value = dense<[true, false, true]> : tensor<3xi1>}} : () -> {tb}\n'
            f'  %r = "mo.add"(%x, %c) : ({t}, {t}) -> {t}\n'
            f"  func.return %r, %b : {t}, {tb}\n}}\n")
    c = Compiled(text)
    x = np.array([[10, 20], [30, 40]], np.int32)
    (out, b), _ = c([x], [((2, 2), "int32"), ((3,), "bool")])
    check(out, x + np.array([[1, -2], [3, 4]], np.int32))
    check(b, np.array([True, False, True]))


def _ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|got - exact| in units of the f32 spacing at the exact (float64) value."""
    return np.abs(got - exact) / np.spacing(exact.astype(np.float32)).astype(np.float64)


def test_softmax_row_exp_within_its_bound() -> None:
    """The rows' exp is a degree-5 polynomial (exp_polynomial.POLY5: 2.2 ulp at most). Rows
    [0, y1, ..., y4095] with every y in [-87, -26] sum to exactly 1 in f32 (each exp(y) <=
    5.1e-12), so their outputs are the exp values themselves: each within 2.3 ulp of float64
    exp. Rows of wider values: within 4 ulp-of-1 relative of float64 arithmetic on the f32
    ``x - max`` (its rounding is the input's, not ours: 4e-6 at |x - max| ~ 100)."""
    rows, n = 64, 4096
    c = Compiled(one_op_module("softmax", [("f32", (rows, n))], ("f32", (rows, n)),
                               "axis = 1 : i64"))
    rng = np.random.default_rng(11)
    x = np.float32(rng.uniform(-87, -26, (rows, n)))
    x[:, 0] = 0
    (out,), _ = c([x], [((rows, n), "float32")])
    assert (out[:, 0] == 1).all()
    ulp = _ulps(out[:, 1:].astype(np.float64), np.exp(x[:, 1:].astype(np.float64)))
    assert ulp.max() <= 2.3, (ulp.max(), x[:, 1:].ravel()[np.argmax(ulp)])
    scale = np.float32([[1], [4], [16], [40]]).repeat(rows // 4, 0)
    x = np.float32(rng.standard_normal((rows, n)) * scale)
    (out,), _ = c([x], [((rows, n), "float32")])
    e = np.exp((x - x.max(axis=1, keepdims=True)).astype(np.float64))
    ref = e / e.sum(axis=1, keepdims=True)
    normal = ref >= np.finfo(np.float32).tiny
    rel = np.abs(out[normal] - ref[normal]) / ref[normal]
    assert rel.max() <= 4 * 2.0**-23, rel.max()
