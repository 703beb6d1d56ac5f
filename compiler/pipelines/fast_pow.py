"""f32 ``math.powf`` as vector code: ``pow(x, y)`` lowered to one libm ``powf`` call per lane,
the slowest elementwise op there was (512 x 4096 ``pow(|x|, 1.5)``, one thread: 19.2 ms, torch
6.7 ms).

Where ``y`` is a constant (``ops.pow(x, 2)``, ``x ** -0.5`` in a hand-written RMS norm), the
common exponents are cheaper ops with the same results, C99 ``pow``'s special cases included:
0 -> 1, 1 -> x, 2 -> x * x (both correctly rounded), other integers up to :data:`SMALL_POWER`
as products in f64 (exact up to x^3, then one rounding before the one to f32), 0.5 -> sqrt
(with pow's +0 for -0 and +inf for -inf), -1 -> 1 / x, -0.5 -> 1 / sqrt refined in f64.

Any other ``y`` takes :func:`pow_f64`: ``exp(y log|x|)`` in f64 lanes, then one rounding to
f32. In f64 the f32 domain has no denormals and the product ``y log|x|`` keeps about 40 bits
where it matters (|y log|x|| <= 104), so the result is the correctly rounded f32 value but for
near-halfway cases (a double rounding): within one ulp of libm's ``powf`` and of numpy. The
special cases of C99 ``pow`` (NaN, zeros, infinities, negative bases) are selects around it.
"""

from __future__ import annotations

import math as pymath

from mlir import ir
from mlir.dialects import arith, math

from max.compiler.passes.ir_util import as_op
from max.compiler.pipelines.fast_lanes import like, splat

SMALL_POWER = 4  # integer exponents up to this magnitude: products, not exp/log

_LN2 = pymath.log(2.0)
_LOG2E = 1.0 / _LN2
_SQRT2 = pymath.sqrt(2.0)
# log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716 for m in [sqrt(1/2), sqrt(2)]: the
# series' terms up to s^15 (the first left out is below 1.3e-12 s).
_ATANH_TERMS = 8
# exp(r), |r| <= ln2 / 2: Taylor terms up to r^9 (the first left out, r^10 / 10!, is below 7e-12).
_EXP_TERMS = 10
# exp(t) for |t| > 200 is 0 or inf in f32 already (and finite in f64).
_T_CLAMP = 200.0


def constant_exponent(y: ir.Value) -> float | None:
    """The value of ``y`` where it is a constant (a scalar or a splat vector), else None."""
    owner = as_op(y.owner)
    if owner is None or owner.name != "arith.constant":
        return None
    attr = owner.attributes["value"]
    if isinstance(attr, ir.FloatAttr):
        return ir.FloatAttr(attr).value
    if isinstance(attr, ir.DenseFPElementsAttr) and ir.DenseElementsAttr(attr).is_splat:
        return ir.FloatAttr(ir.DenseElementsAttr(attr).get_splat_value()).value
    return None


def _cmp(pred: arith.CmpFPredicate, a: ir.Value, b: ir.Value) -> ir.Value:
    return arith.cmpf(pred, a, b)


def _integer_power_f64(xd: ir.Value, n: int) -> ir.Value:
    """``xd ** n`` (f64, ``n`` a nonzero integer) by squaring; 1 / that for negative ``n``."""
    result, base, k = None, xd, abs(n)
    while k:
        if k & 1:
            result = base if result is None else arith.mulf(result, base)
        k >>= 1
        if k:
            base = arith.mulf(base, base)
    return arith.divf(splat(xd.type, 1.0), result) if n < 0 else result


def pow_constant(x: ir.Value, c: float) -> ir.Value | None:
    """``pow(x, c)`` by cheaper ops for the exponents the module doc lists, else None."""
    ft = x.type
    f64 = like(ft, ir.F64Type.get())
    if c == 0.0:
        return splat(ft, 1.0)  # even for a NaN x
    if c == 1.0:
        return x
    if c == 2.0:
        return arith.mulf(x, x)
    if c == int(c) and abs(c) <= SMALL_POWER:
        return arith.truncf(ft, _integer_power_f64(arith.extf(f64, x), int(c)))
    if c == 0.5:
        # sqrt(-0) is -0 and sqrt(-inf) NaN, where pow gives +0 and +inf.
        root = arith.addf(math.sqrt(x), splat(ft, 0.0))
        return arith.select(_cmp(arith.CmpFPredicate.OEQ, x, splat(ft, float("-inf"))),
                            splat(ft, float("inf")), root)
    if c == -0.5:
        return _rsqrt(x)
    if c == -1.0:
        return arith.divf(splat(ft, 1.0), x)  # correctly rounded; pow(-0, -1) = -inf
    return None


def _rsqrt(x: ir.Value) -> ir.Value:
    """``pow(x, -0.5)``: 1 / sqrt in f32 (within 2 ulp, 16 lanes a vector), then one Newton
    step in f64 (about 47 bits) and one rounding. 1 / sqrt in f64 took 3.0 ms over 512 x 4096
    on one thread, this 0.9 (torch 0.85)."""
    ft = x.type
    f64 = like(ft, ir.F64Type.get())
    estimate = arith.extf(f64, arith.divf(splat(ft, 1.0), math.sqrt(x)))
    xd = arith.extf(f64, x)
    # r (1 + e / 2), e = 1 - x r^2: the error of r squared.
    e = math.fma(arith.negf(arith.mulf(xd, estimate)), estimate, splat(f64, 1.0))
    r = arith.truncf(ft, math.fma(arith.mulf(estimate, splat(f64, 0.5)), e, estimate))
    # 0 and inf make e NaN: pow(+-0, -0.5) = +inf, pow(+-inf, -0.5) = +0; x < 0: NaN already.
    r = arith.select(_cmp(arith.CmpFPredicate.OEQ, x, splat(ft, 0.0)),
                     splat(ft, float("inf")), r)
    return arith.select(_cmp(arith.CmpFPredicate.OEQ, math.absf(x), splat(ft, float("inf"))),
                        splat(ft, 0.0), r)


def _log_f64(ax: ir.Value) -> ir.Value:
    """log of a positive, finite, nonzero f64 ``ax`` (an f32 value: never denormal in f64)."""
    i64 = like(ax.type, ir.IntegerType.get_signless(64))
    f = lambda v: splat(ax.type, v)  # noqa: E731
    i = lambda v: splat(i64, v)  # noqa: E731
    bits = arith.bitcast(i64, ax)
    e = arith.subi(arith.shrui(bits, i(52)), i(1023))
    m = arith.bitcast(ax.type, arith.ori(arith.andi(bits, i((1 << 52) - 1)),
                                         i(0x3FF0000000000000)))
    hi = _cmp(arith.CmpFPredicate.OGT, m, f(_SQRT2))  # m in [sqrt(1/2), sqrt(2)]
    m = arith.select(hi, arith.mulf(m, f(0.5)), m)
    e = arith.addi(e, arith.select(hi, i(1), i(0)))
    s = arith.divf(arith.subf(m, f(1.0)), arith.addf(m, f(1.0)))
    z = arith.mulf(s, s)
    p = f(1.0 / (2 * _ATANH_TERMS - 1))
    for k in range(_ATANH_TERMS - 2, -1, -1):
        p = math.fma(p, z, f(1.0 / (2 * k + 1)))
    return math.fma(arith.sitofp(ax.type, e), f(_LN2), arith.mulf(arith.mulf(p, s), f(2.0)))


def _exp_f64(t: ir.Value) -> ir.Value:
    """exp of an f64 ``t`` in [-_T_CLAMP, _T_CLAMP]."""
    i64 = like(t.type, ir.IntegerType.get_signless(64))
    f = lambda v: splat(t.type, v)  # noqa: E731
    n = math.roundeven(arith.mulf(t, f(_LOG2E)))
    r = math.fma(n, f(-_LN2), t)
    p = f(1.0 / pymath.factorial(_EXP_TERMS - 1))
    for k in range(_EXP_TERMS - 2, -1, -1):
        p = math.fma(p, r, f(1.0 / pymath.factorial(k)))
    scale = arith.bitcast(t.type, arith.shli(arith.addi(arith.fptosi(i64, n),
                                                        splat(i64, 1023)), splat(i64, 52)))
    return arith.mulf(p, scale)


def pow_f64(x: ir.Value, y: ir.Value) -> ir.Value:
    """C99 ``powf(x, y)`` of f32 (scalar or vector) values, computed in f64 (module doc)."""
    ft = x.type
    f64 = like(ft, ir.F64Type.get())
    P = arith.CmpFPredicate
    c = lambda v: splat(ft, v)  # noqa: E731
    d = lambda v: splat(f64, v)  # noqa: E731
    xd, yd = arith.extf(f64, x), arith.extf(f64, y)
    ax = math.absf(xd)
    # |x| = 0 or inf: log |x| = -inf or +inf, so that y log|x| gives 0 or inf through the clamp.
    zero, inf = _cmp(P.OEQ, ax, d(0.0)), _cmp(P.OEQ, ax, d(float("inf")))
    safe = arith.select(arith.ori(zero, inf), d(1.0), ax)
    lg = arith.select(zero, d(float("-inf")), arith.select(inf, d(float("inf")), _log_f64(safe)))
    t = arith.minnumf(arith.maxnumf(arith.mulf(yd, lg), d(-_T_CLAMP)), d(_T_CLAMP))
    mag = arith.truncf(ft, _exp_f64(t))
    # |x| = 1 (y = +-inf included) or y = 0: 1.
    one = arith.ori(_cmp(P.OEQ, math.absf(x), c(1.0)), _cmp(P.OEQ, y, c(0.0)))
    mag = arith.select(one, c(1.0), mag)
    # A negative base (-0 included): negative for odd integer y, NaN for non-integer y
    # (where the base is finite: pow(-inf, 0.5) is +inf).
    y_int = _cmp(P.OEQ, math.trunc(y), y)
    half = arith.mulf(y, c(0.5))
    y_odd = arith.andi(y_int, _cmp(P.ONE, math.trunc(half), half))
    i32 = like(ft, ir.IntegerType.get_signless(32))
    negative = arith.cmpi(arith.CmpIPredicate.slt, arith.bitcast(i32, x), splat(i32, 0))
    r = arith.select(arith.andi(negative, y_odd), arith.negf(mag), mag)
    finite_negative = arith.andi(_cmp(P.OLT, x, c(0.0)), _cmp(P.OGT, x, c(float("-inf"))))
    nan = c(float("nan"))
    r = arith.select(arith.andi(finite_negative, arith.xori(y_int, splat(
        like(ft, ir.IntegerType.get_signless(1)), 1))), nan, r)
    # NaN in, NaN out, but pow(1, y) = pow(x, 0) = 1.
    any_nan = _cmp(P.UNO, x, y)
    not_one = arith.andi(_cmp(P.UNE, x, c(1.0)), _cmp(P.UNE, y, c(0.0)))
    return arith.select(arith.andi(any_nan, not_one), nan, r)


def expand_pow(x: ir.Value, y: ir.Value) -> ir.Value:
    """``powf(x, y)`` of f32 values as vector code: :func:`pow_constant` where ``y`` is a
    constant it covers, else :func:`pow_f64`."""
    c = constant_exponent(y)
    fast = pow_constant(x, c) if c is not None else None
    return fast if fast is not None else pow_f64(x, y)


__all__ = ["SMALL_POWER", "constant_exponent", "expand_pow", "pow_constant", "pow_f64"]
