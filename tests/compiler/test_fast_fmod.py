"""f32 ``mod`` with its fmod as vector code (fast_fmod.py): bit for bit numpy's fmod (libm's,
exact), moved to the divisor's sign as the lowering does, special values included."""

from __future__ import annotations

import numpy as np
import pytest
from mo_helpers import Compiled, one_op_module, scheduled_ir

# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")

_SPECIALS = np.float32([0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 0.1, -0.1, 1e-45, -1e-45, 1e-38, 7e37,
                        -7e37, 3.4e38, np.inf, -np.inf, np.nan, 16777217.0, 0.5, 2.0])


def _reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The lowering's mod: C fmod (exact), plus y where it is nonzero and of the other sign."""
    with np.errstate(all="ignore"):
        r = np.fmod(x, y)
        adjust = (r != 0) & ((r < 0) != (y < 0))
        return np.where(adjust, r + y, r).astype(np.float32)


def _assert_same(out: np.ndarray, ref: np.ndarray) -> None:
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    num = ~np.isnan(ref)
    np.testing.assert_array_equal(out[num], ref[num])
    assert np.array_equal(np.signbit(out[num]), np.signbit(ref[num]))  # zeros' signs


def _mod(x: np.ndarray, y: np.ndarray, dims: tuple) -> np.ndarray:
    c = Compiled(one_op_module("mod", [("f32", dims), ("f32", dims)], ("f32", dims)))
    (out,), _ = c([x, y], [(x.shape, "float32")])
    return out


def test_mod_matches_fmod_bit_for_bit() -> None:
    rng = np.random.default_rng(9)
    n = 200_000
    x = np.concatenate([rng.standard_normal(n) * 100, rng.uniform(-1e6, 1e6, n),
                        np.exp(rng.uniform(-80, 80, n)) * rng.choice([-1, 1], n)]).astype(np.float32)
    y = np.concatenate([rng.standard_normal(n) * 3,
                        rng.uniform(0.5, 7, n) * rng.choice([-1, 1], n),
                        np.exp(rng.uniform(-80, 80, n))]).astype(np.float32)
    # Exact multiples (results of zero, signed like x), and quotients just below integers
    # (up to the fast path's 2^29).
    y[:1000] = np.float32(0.25)
    x[:1000] = (np.arange(-500, 500) * 0.25).astype(np.float32)
    y[1000:2000] = rng.uniform(1, 2, 1000).astype(np.float32)
    near = (rng.integers(1, 2**29, 1000) * y[1000:2000].astype(np.float64)).astype(np.float32)
    x[1000:2000] = np.nextafter(near, np.float32(0))
    gx, gy = np.meshgrid(_SPECIALS, _SPECIALS)
    x, y = np.concatenate([x, gx.ravel()]), np.concatenate([y, gy.ravel()])
    _assert_same(_mod(x, y, ("n",)), _reference(x, y))


@pytest.mark.parametrize("shape,dims", [((7,), (7,)), ((3, 67), ("n", 67)), ((1,), ("n",))])
def test_remainders_and_symbolic_sizes(shape: tuple, dims: tuple) -> None:
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(shape) * 50).astype(np.float32)
    y = (rng.standard_normal(shape) * 4).astype(np.float32)
    _assert_same(_mod(x, y, dims), _reference(x, y))


def test_a_huge_quotient_takes_libm_for_its_vector() -> None:
    """Quotients of 2^29 and more (here 1e30 / 3) are exact through libm's fmod."""
    x = np.linspace(-50, 50, 256).astype(np.float32)
    y = np.full(256, 3.0, np.float32)
    x[100] = np.float32(1e30)
    _assert_same(_mod(x, y, (256,)), _reference(x, y))


def test_vector_code_keeps_frem_for_the_slow_branch_only() -> None:
    text = scheduled_ir(one_op_module("mod", [("f32", ("n", 512))] * 2, ("f32", ("n", 512))))
    assert "vector<" in text and "math.fma" in text
    assert text.count("arith.remf") == 1 and "scf.if" in text
