"""f32 sin and cos as vector code (fast_trig.py) against float64 numpy rounded to f32."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mo_helpers import Compiled, one_op_module, scheduled_ir, ulp_distance

from max.compiler.pipelines.fast_trig import LIMIT

# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")

_REF = {"sin": np.sin, "cos": np.cos}


def _run(op: str, x: np.ndarray, dims: tuple) -> np.ndarray:
    c = Compiled(one_op_module(op, [("f32", dims)], ("f32", dims)))
    (out,), _ = c([x], [(x.shape, "float32")])
    return out


def _inputs() -> np.ndarray:
    rng = np.random.default_rng(11)
    # A stride through every f32 bit pattern: both signs, denormals, every exponent (the
    # ones beyond LIMIT take libm).
    bits = np.arange(0, 2**32, 8191, dtype=np.uint64).astype(np.uint32).view(np.float32)
    # Near multiples of pi/2 (results near 0 and +-1: the reduction's hardest cases).
    near = (np.arange(-50_000, 50_000) * (np.pi / 2)).astype(np.float32)
    return np.concatenate([bits, near, rng.uniform(-10, 10, 200_000).astype(np.float32),
                           rng.uniform(-1e6, 1e6, 50_000).astype(np.float32),
                           np.float32([LIMIT, -LIMIT, np.nextafter(np.float32(LIMIT), 0)])])


@pytest.mark.parametrize("op", ["sin", "cos"])
def test_within_an_ulp_over_the_float_range(op: str) -> None:
    x = _inputs()
    out = _run(op, x, ("n",))
    with np.errstate(invalid="ignore"):
        ref = _REF[op](x.astype(np.float64)).astype(np.float32)
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    d = ulp_distance(out, ref)
    assert d.max() <= 1, (x[np.argmax(d)], out[np.argmax(d)], ref[np.argmax(d)])
    # Below LIMIT the polynomial's: the correctly rounded value but for a rare halfway case.
    small = np.abs(x) <= LIMIT
    assert (d[small] > 0).mean() < 1e-3


@pytest.mark.parametrize("op,x,expected", [
    ("sin", [0.0, -0.0, np.inf, -np.inf, 1e-30, -1e-45],
     [0.0, -0.0, np.nan, np.nan, 1e-30, -1e-45]),
    ("cos", [0.0, -0.0, np.inf, -np.inf, 1e-30], [1.0, 1.0, np.nan, np.nan, 1.0]),
])
def test_special_values_exactly(op: str, x: list[float], expected: list[float]) -> None:
    out = _run(op, np.array(x + [np.nan], np.float32), ("n",))
    want = np.array(expected + [np.nan], np.float32)
    np.testing.assert_array_equal(out, want)
    num = ~np.isnan(want)
    assert np.array_equal(np.signbit(out[num]), np.signbit(want[num]))  # sin(-0) is -0


@pytest.mark.parametrize("op", ["sin", "cos"])
def test_beyond_the_limit_takes_libm(op: str) -> None:
    """A vector holding one argument beyond LIMIT computes all its lanes with libm (the
    same values as Python's math, which calls it); its neighbours keep the polynomial."""
    x = np.linspace(-3, 3, 256).astype(np.float32)
    x[70] = np.float32(1e30)
    x[200] = np.float32(-3.0e38)
    out = _run(op, x, (256,))
    fn = getattr(math, op)
    for i in (70, 200):
        assert out[i] == np.float32(fn(float(x[i])))
    ref = _REF[op](x.astype(np.float64)).astype(np.float32)
    assert ulp_distance(out, ref).max() <= 1


@pytest.mark.parametrize("shape,dims", [((7,), (7,)), ((3, 67), ("n", 67)), ((1,), ("n",)),
                                        ((5, 1000), (5, 1000))])
def test_remainders_and_symbolic_sizes(shape: tuple, dims: tuple) -> None:
    x = (np.random.default_rng(4).standard_normal(shape) * 20).astype(np.float32)
    for op in ("sin", "cos"):
        ref = _REF[op](x.astype(np.float64)).astype(np.float32)
        assert ulp_distance(_run(op, x, dims), ref).max() <= 1


def test_vector_code_keeps_libm_for_the_far_branch_only() -> None:
    text = scheduled_ir(one_op_module("sin", [("f32", ("n", 512))], ("f32", ("n", 512))))
    assert "vector<" in text and "math.fma" in text  # the polynomial, on vectors
    assert text.count("math.sin") == 1  # libm only in the branch for arguments beyond LIMIT
    assert "scf.if" in text


def test_float16_goes_through_f32() -> None:
    x = np.linspace(-20, 20, 4001).astype(np.float16)
    out = Compiled(one_op_module("cos", [("f16", ("n",))], ("f16", ("n",))))(
        [x], [(x.shape, "float16")])[0][0]
    np.testing.assert_allclose(out.astype(np.float32),
                               np.cos(x.astype(np.float64)).astype(np.float16).astype(np.float32),
                               atol=1e-3)


def test_vectors_of_any_rank_expand_to_valid_ir() -> None:
    """The far-argument test reduces lanes of 2-D vectors too (flattened first)."""
    from mlir import ir
    from mo_helpers import make_context

    from max.compiler.pipelines.fast_math import expand

    t = "vector<4x16xf32>"
    text = (f"func.func @f(%v: {t}, %w: {t}) -> ({t}, {t}) {{\n"
            f"  %s = math.sin %v : {t}\n  %m = arith.remf %v, %w : {t}\n"
            f"  return %s, %m : {t}, {t}\n}}\n")
    with make_context(), ir.Location.unknown():
        m = ir.Module.parse(text)
        assert expand(m) == 2
        assert m.operation.verify()
        assert "vector.shape_cast" in str(m) and str(m).count("scf.if") == 2
