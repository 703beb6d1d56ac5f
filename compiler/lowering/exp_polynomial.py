"""The f32 exp polynomial that the row exp of softmax (``normalization.py``) and the fast-math
exp (``pipelines/fast_math.py``) share: Cephes ``expf``'s reduction ``r = x - n ln2`` (ln2 in
two parts, the first exact in 9 bits so that ``n * LN2_HI`` is exact for |n| < 2^15) and its
degree-6 polynomial. Each caller picks ``n`` and applies ``2^n`` its own way."""

from __future__ import annotations

from collections.abc import Callable

from mlir import ir
from mlir.dialects import arith, math

LOG2E = 1.44269504088896341
LN2_HI = 0.693359375
LN2_LO = -2.12194440e-4
POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
        1.6666665459e-1, 5.0000001201e-1)


def exp_over_2n(x: ir.Value, n: ir.Value, const: Callable[[float], ir.Value]) -> ir.Value:
    """``exp(x) / 2^n`` for an integer-valued f32 ``n`` near ``x log2(e)``: ``1 + r + r^2
    P(r)``. ``const`` makes an f32 constant of ``x``'s (scalar or vector) type."""
    r = math.fma(n, const(-LN2_HI), x)
    r = math.fma(n, const(-LN2_LO), r)
    p = const(POLY[0])
    for k in POLY[1:]:
        p = math.fma(p, r, const(k))
    return arith.addf(math.fma(p, arith.mulf(r, r), r), const(1.0))


__all__ = ["LN2_HI", "LN2_LO", "LOG2E", "POLY", "exp_over_2n"]
