"""f32 ``math.sin`` and ``math.cos`` as vector code: each was a libm call per lane, 17-20x
torch over 512 x 4096 on one thread (rotary position embeddings compute them per call).

The argument is reduced in f64 lanes: ``k = round(x 2/pi)``, ``r = x - k pi/2`` with pi/2 in
three parts through fused multiply-adds, exact to far below an f32 ulp for ``|x|`` up to
:data:`LIMIT`; then ``sin(r)`` and ``cos(r)`` (``|r| <= pi/4``) as f64 Taylor polynomials and
the quadrant ``k mod 4`` picks and signs one of them; one rounding to f32 at the end. Lanes
beyond :data:`LIMIT` (where f32 values are 2^10 and more apart, any period long gone) need a
reduction with hundreds of bits of pi: a vector holding one takes libm for all its lanes, at
run time (one compare and reduction a vector otherwise).
"""

from __future__ import annotations

import math as pymath

from mlir import ir
from mlir.dialects import arith, math

from max.compiler.pipelines.fast_lanes import libm_where_any, like, splat

LIMIT = 2.0 ** 24 * pymath.pi  # |x| beyond: libm (see the module doc)
_TWO_OVER_PI = 2.0 / pymath.pi
# pi/2 = _P1 + _P2 + _P3 (each the f64 rounding of what the ones before leave).
_P1 = 1.5707963267948966
_P2 = 6.123233995736766e-17
_P3 = -1.4973849048591698e-33
# |r| <= pi/4: sin to r^11, cos to r^10 (the first terms left out, r^13 / 13! and r^12 / 12!,
# are below 1e-11 and 2e-10 of the result: an f32 ulp is 6e-8 of it).
_SIN_TERMS = 6
_COS_TERMS = 6


def _poly(r: ir.Value, z: ir.Value, odd: bool, terms: int) -> ir.Value:
    """sin(r) (``odd``) or cos(r) as Taylor sums in ``z = r^2``, Horner from the top term."""
    f = lambda v: splat(r.type, v)  # noqa: E731
    first = 1 if odd else 0
    coeffs = [(-1) ** i / pymath.factorial(2 * i + first) for i in range(terms)]
    p = f(coeffs[-1])
    for c in reversed(coeffs[:-1]):
        p = math.fma(p, z, f(c))
    return arith.mulf(p, r) if odd else p


def _fast(x: ir.Value, cosine: bool) -> ir.Value:
    """sin or cos of f32 lanes with ``|x| <= LIMIT`` (others: garbage, replaced by libm)."""
    ft = x.type
    f64 = like(ft, ir.F64Type.get())
    i32 = like(ft, ir.IntegerType.get_signless(32))
    d = lambda v: splat(f64, v)  # noqa: E731
    P = arith.CmpFPredicate
    # Beyond LIMIT, NaN and inf: a quiet 0 here (k stays an i32), the result fixed below.
    ok = arith.cmpf(P.OLE, math.absf(x), splat(ft, LIMIT))
    xd = arith.extf(f64, arith.select(ok, x, splat(ft, 0.0)))
    k = math.roundeven(arith.mulf(xd, d(_TWO_OVER_PI)))
    r = math.fma(k, d(-_P1), xd)
    r = math.fma(k, d(-_P2), r)
    r = math.fma(k, d(-_P3), r)
    z = arith.mulf(r, r)
    s, c = _poly(r, z, True, _SIN_TERMS), _poly(r, z, False, _COS_TERMS)
    # Quadrant q = k mod 4: sin(x) = s, c, -s, -c; cos(x) = sin(x + pi/2): q + 1.
    q = arith.fptosi(i32, k)
    if cosine:
        q = arith.addi(q, splat(i32, 1))
    odd = arith.cmpi(arith.CmpIPredicate.ne, arith.andi(q, splat(i32, 1)), splat(i32, 0))
    neg = arith.cmpi(arith.CmpIPredicate.ne, arith.andi(q, splat(i32, 2)), splat(i32, 0))
    v = arith.select(odd, c, s)
    y = arith.truncf(ft, arith.select(neg, arith.negf(v), v))
    if not cosine:  # sin(-0) = -0 (r is +0 there)
        y = arith.select(arith.cmpf(P.OEQ, x, splat(ft, 0.0)), x, y)
    # NaN and +-inf: NaN (x - x is NaN for both).
    diff = arith.subf(x, x)
    return arith.select(arith.cmpf(P.UNO, diff, diff), splat(ft, float("nan")), y)


def _expand(x: ir.Value, cosine: bool) -> ir.Value:
    big = arith.cmpf(arith.CmpFPredicate.OGT, math.absf(x), splat(x.type, LIMIT))
    return libm_where_any(big, x.type, lambda: math.cos(x) if cosine else math.sin(x),
                          lambda: _fast(x, cosine))


def expand_sin(x: ir.Value) -> ir.Value:
    """``math.sin`` of f32 values as vector code (module doc)."""
    return _expand(x, False)


def expand_cos(x: ir.Value) -> ir.Value:
    """``math.cos`` of f32 values as vector code (module doc)."""
    return _expand(x, True)


__all__ = ["LIMIT", "expand_cos", "expand_sin"]
