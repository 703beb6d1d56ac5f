"""The f32 exp polynomials that the row exp of softmax (``normalization.py``) and the fast-math
exp (``pipelines/fast_math.py``) share: Cephes ``expf``'s reduction ``r = x - n ln2`` (ln2 in
two parts, the first exact in 9 bits so that ``n * LN2_HI`` is exact for |n| < 2^15), then
``exp(r) = 1 + r + c2 r^2 + ...`` by Horner's rule on |r| <= ln2 / 2. Each caller picks ``n``
and applies ``2^n`` its own way.

The coefficients are minimax in relative error, fitted for this project (Lawson's iteration
on Chebyshev points, c0 = c1 = 1 kept exact, then rounded to f32). Measured in f32 arithmetic
over 12M points of [-87, 88.7] against float64 ``exp``: degree 6 (:data:`POLY6`) at most 0.87
ulp, 0.26 on average, one fma fewer and more accurate than Cephes' ``1 + r + r^2 P(r)``
(1.01 ulp, its eight operations); degree 5 (:data:`POLY5`) at most 2.2 ulp, 0.68 on average,
two operations fewer again: the softmax's choice, as oneDNN's and XNNPACK's softmax exp, whose
sum and normalisation hide it (2.6e-7 relative)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlir import ir
from mlir.dialects import math

LOG2E = 1.44269504088896341
LN2_HI = 0.693359375
LN2_LO = -2.12194440e-4
# c6 .. c2 and c5 .. c2 (c1 = c0 = 1), highest power first.
POLY6 = (1.381461276e-03, 8.368710056e-03, 4.166838899e-02, 1.666652113e-01, 4.999999404e-01)
POLY5 = (8.312525228e-03, 4.189011455e-02, 1.666711420e-01, 4.999923110e-01)


def exp_over_2n(x: ir.Value, n: ir.Value, const: Callable[[float], ir.Value],
                poly: Sequence[float] = POLY6) -> ir.Value:
    """``exp(x) / 2^n`` for an integer-valued f32 ``n`` near ``x log2(e)``. ``const`` makes an
    f32 constant of ``x``'s (scalar or vector) type; ``poly`` is :data:`POLY6` or
    :data:`POLY5`."""
    r = math.fma(n, const(-LN2_HI), x)
    r = math.fma(n, const(-LN2_LO), r)
    p = const(poly[0])
    for k in (*poly[1:], 1.0, 1.0):
        p = math.fma(p, r, const(k))
    return p


__all__ = ["LN2_HI", "LN2_LO", "LOG2E", "POLY5", "POLY6", "exp_over_2n"]
