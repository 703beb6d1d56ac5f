"""f32 pow as vector code (fast_pow.py) against C99 pow in float64, rounded once to f32.

numpy's own float32 ``power`` is no reference here: it is 1 ulp off the correctly rounded
value for about a tenth of random inputs, and with a scalar exponent it takes shortcuts
(``sqrt`` for 0.5) whose special values differ from C99's (``pow(-inf, 0.5)`` is +inf).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from mo_helpers import Compiled, lowered_llvm, one_op_module, ulp_distance

from max.driver import CPU
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")

_SPECIALS = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 1.5, -1.5, np.inf,
                      -np.inf, np.nan, 1e-45, -1e-45, 1e-38, 3.4e38, -3.4e38, 0.99999994,
                      1.0000001, 16777216.0, 16777217.0, -16777216.0, 1e-10, 7.0, -7.0, 100.0],
                     np.float32)


def _reference(x: np.ndarray, y: np.ndarray | float) -> np.ndarray:
    """C99 pow in float64, rounded to f32. The exponent is a whole array: numpy takes no
    shortcut then (a broadcast scalar 0.5 is a sqrt, NaN for -inf)."""
    y = np.full(x.shape, np.float64(y)) if np.isscalar(y) else y.astype(np.float64)
    with np.errstate(all="ignore"):
        return np.power(x.astype(np.float64), y).astype(np.float32)


def _assert_pow(out: np.ndarray, ref: np.ndarray) -> None:
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    special = np.isinf(ref) | (ref == 0)  # infinities and zeros exactly, signs included
    np.testing.assert_array_equal(out[special], ref[special])
    assert np.array_equal(np.signbit(out[special]), np.signbit(ref[special]))
    d = ulp_distance(out, ref)
    assert d.max() <= 1, (d.max(), np.argmax(d))


def _general_inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    n = 100_000
    x = np.concatenate([rng.standard_normal(n) * 10, np.exp(rng.uniform(-100, 88, n)),
                        rng.uniform(0.5, 2.0, n)]).astype(np.float32)
    y = np.concatenate([rng.standard_normal(n) * 3, rng.uniform(-1.2, 1.2, n),
                        rng.uniform(-60, 60, n)]).astype(np.float32)
    y[::5] = np.round(y[::5])  # integer exponents: negative bases give numbers, signed
    # Large exponents of bases near 1 (to sqrt(1/2) and sqrt(2): the log's reduced range),
    # results across the f32 range: where the log's error is multiplied the most.
    near_one = rng.uniform(0.70, 1.42, n).astype(np.float32)
    steep = (rng.uniform(-85, 85, n) / np.abs(np.log(near_one.astype(np.float64)) + 1e-3))
    x, y = np.concatenate([x, near_one]), np.concatenate([y, steep.astype(np.float32)])
    gx, gy = np.meshgrid(_SPECIALS, _SPECIALS)
    return np.concatenate([x, gx.ravel()]), np.concatenate([y, gy.ravel()])


def test_pow_of_two_tensors_within_an_ulp() -> None:
    """Every C99 special case (NaN, zeros, infinities, negative bases, |x| = 1) exactly."""
    x, y = _general_inputs()
    c = Compiled(one_op_module("pow", [("f32", ("n",)), ("f32", ("n",))], ("f32", ("n",))))
    (out,), _ = c([x, y], [(x.shape, "float32")])
    _assert_pow(out, _reference(x, y))


def _pow_constant(x: np.ndarray, exponent: float, shape: tuple) -> np.ndarray:
    dev = DeviceRef.CPU()
    graph = Graph("pow_const", lambda v: ops.pow(v, exponent),
                  input_types=[TensorType(DType.float32, shape, dev)])
    model = InferenceSession(devices=[CPU()]).load(graph)
    return model.execute(x)[0].to_numpy()


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -4.0, 0.5,
                                      -0.5, 1.5, 1 / 3, -2.5, 5.0, 1e10])
def test_constant_exponents(exponent: float) -> None:
    """The shortcuts (products, sqrt, 1 / sqrt) and the general path, special values too."""
    rng = np.random.default_rng(int(abs(exponent) * 10) % 1000)
    x = np.concatenate([rng.standard_normal(20_000) * 10, _SPECIALS,
                        np.exp(rng.uniform(-87, 88, 1000))]).astype(np.float32)
    out = _pow_constant(x, exponent, x.shape)
    _assert_pow(out, _reference(x, np.float32(exponent)))


@pytest.mark.parametrize("shape,dims", [((7,), (7,)), ((3, 67), ("n", 67)), ((1,), ("n",))])
def test_remainders_and_symbolic_sizes(shape: tuple, dims: tuple) -> None:
    """Odd sizes take the masked or scalar remainder of the vector loop."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    y = np.round(rng.standard_normal(shape) * 4).astype(np.float32)
    c = Compiled(one_op_module("pow", [("f32", dims), ("f32", dims)], ("f32", dims)))
    (out,), _ = c([x, y], [(shape, "float32")])
    _assert_pow(out, _reference(x, y))


def test_vector_pow_calls_no_libm() -> None:
    llvm = lowered_llvm(one_op_module("pow", [("f32", ("n", 256)), ("f32", ("n", 256))],
                                      ("f32", ("n", 256))))
    assert "vector<" in llvm  # the schedule vectorized it
    assert "powf" not in llvm and "llvm.intr.pow" not in llvm


def test_f64_pow_keeps_libm() -> None:
    x = np.linspace(0.1, 5, 1001)
    y = np.linspace(-3, 3, 1001)
    c = Compiled(one_op_module("pow", [("f64", ("n",)), ("f64", ("n",))], ("f64", ("n",))))
    (out,), _ = c([x, y], [(x.shape, "float64")])
    # libm's pow exactly (Python's math.pow calls it; numpy's own SIMD pow differs by an ulp).
    np.testing.assert_array_equal(out, [math.pow(a, b) for a, b in zip(x, y)])
