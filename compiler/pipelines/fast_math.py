"""Polynomial f32 ``exp``, ``erf``, ``tanh``, ``log``, ``log1p``, ``acos`` (and ``powf``,
:mod:`fast_pow`; ``sin``, ``cos``, :mod:`fast_trig`; ``remf``, :mod:`fast_fmod`): vector math
stays vector code.

``math.exp`` on a vector lowers to one libm ``expf`` call per lane (release MLIR has no
polynomial-approximation pass we can reach from the bindings), which makes softmax 5x slower
(MLIR-FACTS 2). :func:`expand_exp` replaces every f32 ``math.exp`` (scalar or vector) with the
Cephes ``expf`` scheme in arith/math ops:

    n = roundeven(x * log2(e)),  r = x - n * ln2 (in two parts, exact product),
    exp(x) = P(r) * 2^n,  P of degree 6 (``exp_polynomial.POLY6``, 0.87 ulp), |r| <= ln2 / 2

2^n is built from exponent bits in two factors, so that n in [-150, 128] neither overflows the
exponent field nor flushes results that are representable as denormals. x is clamped first
(+-inf included), NaN is passed through. With AVX-512 (``vscalefps``), 2^n is applied by one
``ldexp`` and n rounded by one ``lrint`` (:func:`_exp_scalef`): the same results, half the
instructions.

The other functions :func:`expand` replaces have no vector lowering here either: ``math.erf``
becomes one libm ``erff`` call per lane (so the schedule refuses to vectorize it), ``math.tanh``
and ``math.log`` (and ``math.log1p``, which MathToLLVM turns into ``log(1 + x)``, losing all
accuracy near 0) become per-lane ``tanhf``/``logf`` calls. GELU, tanh-GELU and logsoftmax then
run as scalar libm loops. Each function below only uses fma/mul/add/div/min/max/select/bitcast,
all of which LLVM keeps as vector instructions.

* erf: Eigen's rational approximation ``x P(x^2) / Q(x^2)`` on [-4, 4] (abs err ~1e-7), +-1
  beyond 3.9 (erf rounds to +-1 in f32 there).
* tanh: Cephes ``tanhf``: ``x + x^3 P(x^2)`` below 0.625, ``sign(x) (1 - 2 / (exp(2|x|) + 1))``
  above (the polynomial exp above, |x| clamped to 10 first, where tanh is 1 in f32, so the
  exp needs neither its clamps nor its split scale: tanh 512 x 4096 on one thread 1.06-1.12
  -> 0.93-1.00 ms, accuracy unchanged). Eigen's single rational approximation is cheaper
  but measured 4.8 ulp (2.9e-7 relative); this is 2 ulp (1.3 ulp over 12M points).
* log: Cephes ``logf``: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log = f + f^3 P(f) - f^2/2
  + e ln2, f = m - 1 exact (Sterbenz); denormals scaled by 2^23 first.
* log1p: ``u = 1 + x; log(u) * x / (u - 1)`` (Goldberg), x itself where u == 1: the rounding
  error of ``1 + x`` cancels in the ratio, so small x keep full relative accuracy.
* acos: Cephes ``asinf`` of |x| or of sqrt((1 - |x|) / 2), then pi/2, pi or 0 in two parts
  (see :func:`_acos`): within 1.1 ulp; a libm ``acosf`` per lane was 5x torch's time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlir import ir
from mlir.dialects import arith, math

from max.compiler.host_cpu import host
from max.compiler.lowering.exp_polynomial import LN2_HI, LN2_LO, LOG2E, exp_over_2n
from max.compiler.pipelines import fast_lanes

_X_MAX = 88.8   # exp overflows to inf above 88.7228
_X_MIN = -104.0  # exp underflows to 0 below -103.97


def _const(t: ir.Type, value: float | int) -> ir.Value:
    if isinstance(t, ir.VectorType):
        et = ir.VectorType(t).element_type
        attr = (ir.FloatAttr.get(et, value) if isinstance(et, ir.F32Type)
                else ir.IntegerAttr.get(et, int(value)))
        return arith.constant(t, ir.DenseElementsAttr.get_splat(t, attr))
    if isinstance(t, ir.F32Type):
        return arith.constant(t, ir.FloatAttr.get(t, value))
    return arith.constant(t, ir.IntegerAttr.get(t, int(value)))


def _exp_small(x: ir.Value) -> ir.Value:
    """exp of an f32 value known to lie in [0, _TANH_CLAMP * 2] (no NaN): :func:`_exp` without
    its clamps and NaN select, and 2^n one scale (n <= 29: its biased exponent fits)."""
    ft = x.type
    if isinstance(ft, ir.VectorType) and host().has_scalef:  # (the GPUs' tanh is scalar)
        return _exp_by_scalef(x)
    i32 = ir.IntegerType.get_signless(32)
    it = ir.VectorType.get(ir.VectorType(ft).shape, i32) if isinstance(ft, ir.VectorType) else i32
    c = lambda v: _const(ft, v)  # noqa: E731
    n = math.roundeven(arith.mulf(x, c(LOG2E)))
    y = exp_over_2n(x, n, c)
    scale = arith.bitcast(ft, arith.shli(arith.addi(arith.fptosi(it, n), _const(it, 127)),
                                         _const(it, 23)))
    return arith.mulf(y, scale)


def _clamp_above(x: ir.Value, hi: float) -> ir.Value:
    """min(x, hi), a NaN kept: a select that LLVM makes one ``vminps`` (whose NaN operand
    order it keeps), where ``minnumf`` is two compares, a mask ``or`` and a blend."""
    hi_v = _B(x).f(hi)
    return arith.select(_cmp(arith.CmpFPredicate.OGT, x, hi_v), hi_v, x)


def _clamp(x: ir.Value, lo: float, hi: float) -> ir.Value:
    """``x`` clamped to [lo, hi], a NaN kept (one ``vminps``, one ``vmaxps``)."""
    x = _clamp_above(x, hi)
    lo_v = _B(x).f(lo)
    return arith.select(_cmp(arith.CmpFPredicate.OLT, x, lo_v), lo_v, x)


def _exp_by_scalef(x: ir.Value) -> ir.Value:
    """exp of an f32 vector in [_X_MIN, _X_MAX] or NaN where ``vscalefps`` exists (AVX-512):
    2^n applied by it (overflow, underflow and denormal results rounded once, as the two
    factors did), n from one ``cvtps2dq``, a NaN carried through the arithmetic."""
    b = _B(x)
    ni = fast_lanes.lrint(arith.mulf(x, b.f(LOG2E)))
    return fast_lanes.ldexp(exp_over_2n(x, arith.sitofp(b.ft, ni), b.f), ni)


def _exp_scalef(x: ir.Value) -> ir.Value:
    """:func:`_exp` of an f32 vector where ``vscalefps`` exists: the clamps as NaN-keeping
    selects, then :func:`_exp_by_scalef`: about 16 instructions a vector, not 33."""
    return _exp_by_scalef(_clamp(x, _X_MIN, _X_MAX))  # +-inf would make r = inf - inf


def _exp(x: ir.Value) -> ir.Value:
    """The polynomial exp of an f32 scalar or vector value."""
    if isinstance(x.type, ir.VectorType) and host().has_scalef:
        return _exp_scalef(x)
    ft = x.type
    i32 = ir.IntegerType.get_signless(32)
    it = ir.VectorType.get(ir.VectorType(ft).shape, i32) if isinstance(ft, ir.VectorType) else i32
    c = lambda v: _const(ft, v)  # noqa: E731
    ci = lambda v: _const(it, v)  # noqa: E731
    # maxnumf/minnumf return the number for a NaN input; NaN is restored by the select below.
    xc = arith.minnumf(arith.maxnumf(x, c(_X_MIN)), c(_X_MAX))
    n = math.roundeven(arith.mulf(xc, c(LOG2E)))
    y = exp_over_2n(xc, n, c)
    # 2^n = 2^h * 2^(n-h), h = n >> 1: each factor's biased exponent stays in [1, 254].
    ni = arith.fptosi(it, n)
    h = arith.shrsi(ni, ci(1))
    f1 = arith.bitcast(ft, arith.shli(arith.addi(h, ci(127)), ci(23)))
    f2 = arith.bitcast(ft, arith.shli(arith.addi(arith.subi(ni, h), ci(127)), ci(23)))
    y = arith.mulf(arith.mulf(y, f1), f2)
    is_nan = arith.cmpf(arith.CmpFPredicate.UNO, x, x)
    return arith.select(is_nan, x, y)


_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
          -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
          -1.60960333262415e-02)  # odd numerator, highest power first
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
          -7.37332916720468e-03, -1.42647390514189e-02)
_ERF_CLAMP = 4.0
_ERF_ONE = 3.9  # |x| > 3.9: 1 - erf(x) < 2^-25, so erf(x) rounds to +-1

_TANH_P = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
           -3.33332819422e-1)  # Cephes tanhf, |x| < 0.625
_TANH_SMALL = 0.625
_TANH_CLAMP = 10.0  # 1 - 2 / (exp(20) + 1) = 1 - 4.1e-9 rounds to 1 in f32 (beyond 9.02 too)

_LOG_P = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
          1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
          3.3333331174e-1)
_SQRT2 = 1.41421356237
_MIN_NORMAL = 1.17549435e-38


class _B:
    """Constants of the right (scalar or vector) f32/i32 type for one value being replaced."""

    def __init__(self, x: ir.Value) -> None:
        self.ft = x.type
        i32 = ir.IntegerType.get_signless(32)
        self.it = (ir.VectorType.get(ir.VectorType(self.ft).shape, i32)
                   if isinstance(self.ft, ir.VectorType) else i32)

    def f(self, v: float) -> ir.Value:
        return _const(self.ft, v)

    def i(self, v: int) -> ir.Value:
        return _const(self.it, v)

    def horner(self, coeffs: Sequence[float], z: ir.Value) -> ir.Value:
        p = self.f(coeffs[0])
        for k in coeffs[1:]:
            p = math.fma(p, z, self.f(k))
        return p


def _cmp(pred: arith.CmpFPredicate, a: ir.Value, b: ir.Value) -> ir.Value:
    return arith.cmpf(pred, a, b)


def _restore_nan(x: ir.Value, y: ir.Value) -> ir.Value:
    """x where x is NaN (min/max clamps turned it into a number), else y."""
    return arith.select(_cmp(arith.CmpFPredicate.UNO, x, x), x, y)


def _erf(x: ir.Value) -> ir.Value:
    b = _B(x)
    xc = arith.minnumf(arith.maxnumf(x, b.f(-_ERF_CLAMP)), b.f(_ERF_CLAMP))
    z = arith.mulf(xc, xc)
    y = arith.divf(arith.mulf(xc, b.horner(_ERF_P, z)), b.horner(_ERF_Q, z))
    big = _cmp(arith.CmpFPredicate.OGT, math.absf(x), b.f(_ERF_ONE))
    y = arith.select(big, math.copysign(b.f(1.0), x), y)
    return _restore_nan(x, y)


def _tanh(x: ir.Value) -> ir.Value:
    b = _B(x)
    ax = math.absf(x)
    # |x| < 0.625: x + x^3 P(x^2); the correction is below x/8, so its rounding error is too.
    z = arith.mulf(x, x)
    small = math.fma(arith.mulf(b.horner(_TANH_P, z), z), x, x)
    # Otherwise 1 - 2 / (exp(2|x|) + 1), which loses nothing to cancellation there (tanh >= 0.55).
    # |x| clamped to _TANH_CLAMP, where that is already 1 in f32 (and a NaN: restored below).
    axc = _clamp_above(ax, _TANH_CLAMP)
    e = _exp_small(arith.addf(axc, axc))
    big = arith.subf(b.f(1.0), arith.divf(b.f(2.0), arith.addf(e, b.f(1.0))))
    y = arith.select(_cmp(arith.CmpFPredicate.OLT, ax, b.f(_TANH_SMALL)), small,
                     math.copysign(big, x))
    return _restore_nan(x, y)


def _log(x: ir.Value) -> ir.Value:
    b = _B(x)
    # Denormals (and 0, negatives: overridden below) get 23 more exponent bits to read from.
    den = _cmp(arith.CmpFPredicate.OLT, x, b.f(_MIN_NORMAL))
    xs = arith.select(den, arith.mulf(x, b.f(2.0 ** 23)), x)
    bits = arith.bitcast(b.it, xs)
    e = arith.subi(arith.shrui(bits, b.i(23)), arith.select(den, b.i(127 + 23), b.i(127)))
    m = arith.bitcast(b.ft, arith.ori(arith.andi(bits, b.i(0x7FFFFF)), b.i(0x3F800000)))
    # m in [1, 2); above sqrt(2) halve it, so that f = m - 1 is in [-0.293, 0.414] and exact.
    hi = _cmp(arith.CmpFPredicate.OGT, m, b.f(_SQRT2))
    m = arith.select(hi, arith.mulf(m, b.f(0.5)), m)
    e = arith.addi(e, arith.select(hi, b.i(1), b.i(0)))
    ef = arith.sitofp(b.ft, e)
    f = arith.subf(m, b.f(1.0))
    z = arith.mulf(f, f)
    y = arith.mulf(arith.mulf(b.horner(_LOG_P, f), f), z)
    y = math.fma(ef, b.f(LN2_LO), y)
    y = math.fma(z, b.f(-0.5), y)
    r = math.fma(ef, b.f(LN2_HI), arith.addf(f, y))
    inf = b.f(float("inf"))
    r = arith.select(_cmp(arith.CmpFPredicate.OEQ, x, inf), inf, r)
    r = arith.select(_cmp(arith.CmpFPredicate.OEQ, x, b.f(0.0)), b.f(float("-inf")), r)
    # ULT: x < 0 or NaN.
    return arith.select(_cmp(arith.CmpFPredicate.ULT, x, b.f(0.0)), b.f(float("nan")), r)


def _log1p(x: ir.Value) -> ir.Value:
    b = _B(x)
    u = arith.addf(x, b.f(1.0))
    d = arith.subf(u, b.f(1.0))
    r = arith.mulf(_log(u), arith.divf(x, d))
    r = arith.select(_cmp(arith.CmpFPredicate.OEQ, d, b.f(0.0)), x, r)  # u == 1: log1p(x) = x
    inf = b.f(float("inf"))
    return arith.select(_cmp(arith.CmpFPredicate.OEQ, x, inf), inf, r)  # inf / inf otherwise


# Cephes asinf on [0, 0.5]: asin(s) = s + s z P(z), z = s^2 (2.5e-7 relative at most).
_ASIN_P = (4.2163199048e-2, 2.4181311049e-2, 4.5470025998e-2, 7.4953002686e-2,
           1.6666752422e-1)
_PI_HI, _PI_LO = 3.1415927410125732, -8.742278000372485e-08  # pi = HI + LO, HI an f32
_PIO2_HI, _PIO2_LO = 1.5707963705062866, -4.371139000186243e-08


def _acos(x: ir.Value) -> ir.Value:
    """acos of x in [-1, 1] (the lowering clamps) or NaN, from Cephes' asinf: with a = |x|,
    acos(x) = pi/2 - sign(x) asin(a) for a <= 1/2; above, with s = sqrt((1 - a) / 2) (exact
    but for the root), 2 asin(s) for x > 0 and pi - 2 asin(s) for x < 0. One formula,
    C_HI - (k asin - C_LO), with the constants selected per lane: pi and pi/2 in two parts, so
    that each lane rounds about once more than its asin."""
    b = _B(x)
    a = math.absf(x)
    big = _cmp(arith.CmpFPredicate.OGT, a, b.f(0.5))  # false for NaN: the x * x lane
    half_gap = arith.mulf(arith.subf(b.f(1.0), a), b.f(0.5))
    z = arith.select(big, half_gap, arith.mulf(x, x))
    s = arith.select(big, math.sqrt(half_gap), a)
    asin = math.fma(arith.mulf(s, z), b.horner(_ASIN_P, z), s)
    neg = _cmp(arith.CmpFPredicate.OLT, x, b.f(0.0))
    hi = arith.select(big, arith.select(neg, b.f(_PI_HI), b.f(0.0)), b.f(_PIO2_HI))
    lo = arith.select(big, arith.select(neg, b.f(_PI_LO), b.f(0.0)), b.f(_PIO2_LO))
    k = arith.select(big, arith.select(neg, b.f(2.0), b.f(-2.0)), math.copysign(b.f(1.0), x))
    return arith.subf(hi, math.fma(k, asin, arith.negf(lo)))


APPROXIMATIONS: dict[str, Callable[[ir.Value], ir.Value]] = {
    "math.erf": _erf, "math.tanh": _tanh, "math.log": _log, "math.log1p": _log1p,
    "math.acos": _acos,
}


def _is_f32(op: ir.Operation) -> bool:
    t = op.results[0].type
    et = ir.VectorType(t).element_type if isinstance(t, ir.VectorType) else t
    return isinstance(et, ir.F32Type)


def _expand(module: ir.Module, rewrites: dict[str, Callable[..., ir.Value]]) -> int:
    found: list[ir.Operation] = []

    def collect(op: ir.Operation) -> ir.WalkResult:
        if op.name in rewrites and _is_f32(op):
            found.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(collect)
    with module.context:
        for op in found:
            with ir.InsertionPoint(op), op.location:
                new = rewrites[op.name](*op.operands)
            op.results[0].replace_all_uses_with(new)
            op.erase()
    return len(found)


def expand_exp(module: ir.Module) -> int:
    """Replaces every f32 ``math.exp`` in the module; returns how many."""
    return _expand(module, {"math.exp": _exp})


def expand(module: ir.Module) -> int:
    """Replaces every f32 ``math.exp``, ``erf``, ``tanh``, ``log``, ``log1p``, ``powf``
    (:mod:`fast_pow`), ``sin`` and ``cos`` (:mod:`fast_trig`) and ``arith.remf``
    (:mod:`fast_fmod`); returns how many.

    f64 and other types keep their libm calls.
    """
    from max.compiler.pipelines.fast_pow import expand_pow
    from max.compiler.pipelines.fast_fmod import expand_remf
    from max.compiler.pipelines.fast_trig import expand_cos, expand_sin

    return _expand(module, {"math.exp": _exp, "math.powf": expand_pow, "math.sin": expand_sin,
                            "math.cos": expand_cos, "arith.remf": expand_remf,
                            **APPROXIMATIONS})


__all__ = ["expand", "expand_exp"]
