"""Elementwise ops through a .so vs numpy: dtypes, broadcasting, symbolic dims at two sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mo_helpers import Compiled, NP_DTYPES, check, one_op_module, run_one

from max.compiler.pipelines.cpu import have_system_linker

pytestmark = pytest.mark.skipif(not have_system_linker(), reason="no system linker")

erf = np.vectorize(math.erf, otypes=[np.float64])


def _gelu_none(x: np.ndarray) -> np.ndarray:
    return (0.5 * x * (1 + erf(x / np.sqrt(2)))).astype(x.dtype)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return (0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))).astype(x.dtype)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


UNARY_FLOAT = {
    "abs": np.abs, "exp": np.exp, "log": np.log, "log1p": np.log1p, "sqrt": np.sqrt,
    "rsqrt": lambda x: 1 / np.sqrt(x), "tanh": np.tanh, "sigmoid": _sigmoid,
    "relu": lambda x: np.maximum(x, 0), "silu": lambda x: x * _sigmoid(x), "sin": np.sin,
    "cos": np.cos, "erf": lambda x: erf(x).astype(x.dtype), "floor": np.floor,
    "round": np.round, "trunc": np.trunc, "negate": np.negative,
}
POSITIVE = {"log", "sqrt", "rsqrt", "log1p"}


@pytest.mark.parametrize("op", sorted(UNARY_FLOAT))
def test_unary_float_symbolic(op: str) -> None:
    c = Compiled(one_op_module(op, [("f32", ("n", 4))], ("f32", ("n", 4))))
    rng = np.random.default_rng(0)
    for n in (3, 6):
        x = (rng.standard_normal((n, 4)) * 3).astype(np.float32)
        x[0, :3] = [0.5, -2.5, 1.5]  # round: half to even
        if op in POSITIVE:
            x = np.abs(x) + np.float32(1e-3)
            x[0, 0] = 1e-7  # log1p must be accurate near 0
        (out,), _ = c([x], [((n, 4), "float32")])
        check(out, UNARY_FLOAT[op](x).astype(np.float32), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("approximate,ref", [("none", _gelu_none), ("tanh", _gelu_tanh),
                                             ("quick", lambda x: x * _sigmoid(1.702 * x))])
def test_gelu(approximate: str, ref) -> None:
    x = np.linspace(-5, 5, 24, dtype=np.float32).reshape(2, 12)
    out, _ = run_one("gelu", [("f32", (2, 12))], ("f32", (2, 12)), [x], (2, 12),
                     f'approximate = "{approximate}"')
    check(out, ref(x).astype(np.float32), rtol=1e-5, atol=1e-6)


def test_unary_nan_inf_predicates() -> None:
    x = np.array([0.0, np.nan, np.inf, -np.inf, 1.0], np.float32)
    for op, ref in (("is_nan", np.isnan), ("is_inf", np.isinf)):
        out, _ = run_one(op, [("f32", (5,))], ("i1", (5,)), [x], (5,))
        check(out, ref(x))


@pytest.mark.parametrize("elt", ["si32", "si8", "ui8"])
def test_unary_int(elt: str) -> None:
    dt = NP_DTYPES[elt]
    x = np.array([0, 1, 5, 100, 127], dt) if elt != "si32" else np.array([-7, 0, 3, -1, 9], dt)
    if elt == "si8":
        x = np.array([-128, -5, 0, 5, 127], dt)
    for op, ref in (("abs", np.abs), ("negate", np.negative), ("relu", lambda v: np.maximum(v, 0)),
                    ("floor", lambda v: v), ("round", lambda v: v), ("trunc", lambda v: v)):
        if elt == "ui8" and op == "relu":
            continue
        out, _ = run_one(op, [(elt, (5,))], (elt, (5,)), [x], (5,))
        check(out, ref(x).astype(dt))


def test_logical_not() -> None:
    x = np.array([True, False, True])
    out, _ = run_one("logical_not", [("i1", (3,))], ("i1", (3,)), [x], (3,))
    check(out, ~x)


BINARY_FLOAT = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "mod": np.mod,
    "pow": np.power, "max": np.maximum, "min": np.minimum,
}
COMPARE = {"equal": np.equal, "not_equal": np.not_equal, "greater": np.greater,
           "greater_equal": np.greater_equal}


@pytest.mark.parametrize("op", sorted(BINARY_FLOAT))
def test_binary_float_broadcast(op: str) -> None:
    c = Compiled(one_op_module(op, [("f32", ("n", 4)), ("f32", (1, 4))], ("f32", ("n", 4))))
    rng = np.random.default_rng(1)
    for n in (2, 5):
        a = (rng.standard_normal((n, 4)) * 4).astype(np.float32)
        b = (rng.standard_normal((1, 4)) * 4).astype(np.float32)
        if op == "pow":
            a = np.abs(a)
        b[0, 0] = np.nan if op in ("max", "min") else b[0, 0]
        (out,), _ = c([a, b], [((n, 4), "float32")])
        check(out, BINARY_FLOAT[op](a, b), rtol=2e-6, atol=1e-6)


def test_binary_rank_broadcast_both_sides() -> None:
    a = np.arange(3, dtype=np.float32).reshape(3, 1)
    b = np.arange(4, dtype=np.float32)
    out, _ = run_one("add", [("f32", (3, 1)), ("f32", (4,))], ("f32", (3, 4)), [a, b], (3, 4))
    check(out, a + b)


INT_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.floor_divide,
              "mod": np.mod, "max": np.maximum, "min": np.minimum}


@pytest.mark.parametrize("elt", ["si32", "si64", "si8", "ui8", "ui32"])
@pytest.mark.parametrize("op", sorted(INT_BINARY))
def test_binary_int(op: str, elt: str) -> None:
    dt = np.dtype(NP_DTYPES[elt])
    signed = dt.kind == "i"
    vals = [-7, -6, -1, 0, 1, 5, 7, 100] if signed else [0, 1, 5, 7, 100, 200, 3, 9]
    a = np.array(vals, dt).reshape(8, 1)
    b = np.array([3, -3, 1, -1, 0, 7] if signed else [3, 1, 0, 7, 200, 2], dt)
    out, _ = run_one(op, [(elt, (8, 1)), (elt, (6,))], (elt, (8, 6)), [a, b], (8, 6))
    with np.errstate(all="ignore"):
        expected = INT_BINARY[op](a, b)
    check(out, expected.astype(dt))


def test_int_division_extremes() -> None:
    a = np.array([np.iinfo(np.int32).min, 7, -7], np.int32)
    b = np.array([-1, 0, 2], np.int32)
    for op, ref in (("div", np.floor_divide), ("mod", np.mod)):
        out, _ = run_one(op, [("si32", (3,)), ("si32", (3,))], ("si32", (3,)), [a, b], (3,))
        with np.errstate(all="ignore"):
            check(out, ref(a, b))


def test_int_pow() -> None:
    a = np.array([2, -3, 5, 0], np.int32)
    b = np.array([10, 3, 0, 4], np.int32)
    out, _ = run_one("pow", [("si32", (4,)), ("si32", (4,))], ("si32", (4,)), [a, b], (4,))
    check(out, a**b)


@pytest.mark.parametrize("op", sorted(COMPARE))
@pytest.mark.parametrize("elt", ["f32", "si32", "ui8"])
def test_compare(op: str, elt: str) -> None:
    dt = NP_DTYPES[elt]
    if elt == "f32":
        a = np.array([1.0, np.nan, 2.0, -0.0, np.inf], dt)
        b = np.array([1.0, np.nan, 3.0, 0.0, 1.0], dt)
    elif elt == "si32":
        a, b = np.array([1, -5, 2, 0, 7], dt), np.array([1, 3, -3, 0, 8], dt)
    else:
        a, b = np.array([1, 250, 2, 0, 7], dt), np.array([1, 3, 3, 0, 200], dt)
    out, _ = run_one(op, [(elt, (5,)), (elt, (5,))], ("i1", (5,)), [a, b], (5,))
    check(out, COMPARE[op](a, b))


@pytest.mark.parametrize("op,ref", [("logical_and", np.logical_and), ("logical_or", np.logical_or),
                                    ("logical_xor", np.logical_xor)])
def test_logical(op: str, ref) -> None:
    a = np.array([True, True, False, False]).reshape(4, 1)
    b = np.array([True, False])
    out, _ = run_one(op, [("i1", (4, 1)), ("i1", (2,))], ("i1", (4, 2)), [a, b], (4, 2))
    check(out, ref(a, b))


def test_where_broadcast_symbolic() -> None:
    text = one_op_module("where", [("i1", ("n", 1)), ("f32", ("n", 3)), ("f32", (3,))],
                         ("f32", ("n", 3)))
    c = Compiled(text)
    for n in (2, 4):
        cond = (np.arange(n) % 2 == 0).reshape(n, 1)
        x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
        y = np.array([-1, -2, -3], np.float32)
        (out,), _ = c([cond, x, y], [((n, 3), "float32")])
        check(out, np.where(cond, x, y))


CASTS = [("f32", "si32"), ("f32", "ui8"), ("f32", "i1"), ("si32", "f32"), ("ui8", "f32"),
         ("si8", "si64"), ("ui8", "si32"), ("si64", "si8"), ("i1", "f32"), ("i1", "si32"),
         ("si32", "i1"), ("f32", "f64"), ("f64", "f32"), ("f32", "f16"), ("f16", "f32")]


@pytest.mark.parametrize("src,dst", CASTS)
def test_cast(src: str, dst: str) -> None:
    sd, dd = NP_DTYPES[src], NP_DTYPES[dst]
    base = {"f": [0.0, 1.5, -2.7, 3.9, 200.0, np.nan], "i": [0, 1, -2, 3, 100, -128],
            "u": [0, 1, 2, 3, 200, 255], "b": [0, 1, 1, 0, 1, 0]}[np.dtype(sd).kind]
    if dst in ("ui8",) or (np.dtype(sd).kind == "f" and np.dtype(dd).kind in "iu"):
        base = [0.0, 1.5, 2.7, 3.9, 100.0, 7.0]  # avoid numpy's undefined float -> int cases
    x = np.array(base).astype(sd)
    out, _ = run_one("cast", [(src, (6,))], (dst, (6,)), [x], (6,))
    check(out, x.astype(dd), rtol=1e-3 if "f16" in (src, dst) else 0)


def test_float16_math() -> None:
    x = np.linspace(-3, 3, 8).astype(np.float16)
    out, _ = run_one("tanh", [("f16", (8,))], ("f16", (8,)), [x], (8,))
    check(out, np.tanh(x), rtol=2e-3, atol=1e-3)


def test_zero_size_dim() -> None:
    c = Compiled(one_op_module("add", [("f32", ("n", 3)), ("f32", ("n", 3))], ("f32", ("n", 3))))
    x = np.zeros((0, 3), np.float32)
    (out,), _ = c([x, x], [((0, 3), "float32")])
    assert out.shape == (0, 3)


def test_rank0_operand_broadcasts() -> None:
    x = np.arange(4, dtype=np.float32)
    s = np.array(2.5, np.float32)
    out, _ = run_one("mul", [("f32", (4,)), ("f32", ())], ("f32", (4,)), [x, s], (4,))
    check(out, x * s)
