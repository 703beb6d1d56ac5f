"""Polynomial ``exp`` for f32, so that vector exps stay vectors (no scalar ``expf`` calls).

``math.exp`` on a vector lowers to one libm ``expf`` call per lane (release MLIR has no
polynomial-approximation pass we can reach from the bindings), which makes softmax 5x slower
(MLIR-FACTS 2). :func:`expand_exp` replaces every f32 ``math.exp`` (scalar or vector) with the
Cephes ``expf`` scheme in arith/math ops:

    n = roundeven(x * log2(e)),  r = x - n * ln2 (in two parts, exact product),
    exp(x) = P(r) * 2^n,  P degree 7 (Cephes coefficients), |r| <= ln2 / 2

2^n is built from exponent bits in two factors, so that n in [-150, 128] neither overflows the
exponent field nor flushes results that are representable as denormals. x is clamped first
(+-inf included), NaN is passed through.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, math

_LOG2E = 1.44269504088896341
_LN2_HI = 0.693359375  # exact in 9 bits: n * _LN2_HI is exact for |n| < 2^15
_LN2_LO = -2.12194440e-4
_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
         1.6666665459e-1, 5.0000001201e-1)
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


def _exp(x: ir.Value) -> ir.Value:
    """The polynomial exp of an f32 scalar or vector value."""
    ft = x.type
    i32 = ir.IntegerType.get_signless(32)
    it = ir.VectorType.get(ir.VectorType(ft).shape, i32) if isinstance(ft, ir.VectorType) else i32
    c = lambda v: _const(ft, v)  # noqa: E731
    ci = lambda v: _const(it, v)  # noqa: E731
    # maxnumf/minnumf return the number for a NaN input; NaN is restored by the select below.
    xc = arith.minnumf(arith.maxnumf(x, c(_X_MIN)), c(_X_MAX))
    n = math.roundeven(arith.mulf(xc, c(_LOG2E)))
    r = math.fma(n, c(-_LN2_HI), xc)
    r = math.fma(n, c(-_LN2_LO), r)
    p = c(_POLY[0])
    for k in _POLY[1:]:
        p = math.fma(p, r, c(k))
    r2 = arith.mulf(r, r)
    y = arith.addf(math.fma(p, r2, r), c(1.0))
    # 2^n = 2^h * 2^(n-h), h = n >> 1: each factor's biased exponent stays in [1, 254].
    ni = arith.fptosi(it, n)
    h = arith.shrsi(ni, ci(1))
    f1 = arith.bitcast(ft, arith.shli(arith.addi(h, ci(127)), ci(23)))
    f2 = arith.bitcast(ft, arith.shli(arith.addi(arith.subi(ni, h), ci(127)), ci(23)))
    y = arith.mulf(arith.mulf(y, f1), f2)
    is_nan = arith.cmpf(arith.CmpFPredicate.UNO, x, x)
    return arith.select(is_nan, x, y)


def expand_exp(module: ir.Module) -> int:
    """Replaces every f32 ``math.exp`` in the module; returns how many."""
    found: list[ir.Operation] = []

    def collect(op: ir.Operation) -> ir.WalkResult:
        if op.name == "math.exp":
            t = op.results[0].type
            et = ir.VectorType(t).element_type if isinstance(t, ir.VectorType) else t
            if isinstance(et, ir.F32Type):
                found.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(collect)
    with module.context:
        for op in found:
            with ir.InsertionPoint(op), op.location:
                new = _exp(op.operands[0])
            op.results[0].replace_all_uses_with(new)
            op.erase()
    return len(found)


__all__ = ["expand_exp"]
