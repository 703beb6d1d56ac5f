"""float8 <-> f32 conversions of one scalar in integer code: the CPU computes float8 in f32.

LLVM has no float8 types: an ``arith.truncf`` to float8 cannot be translated (the compile
worker crashed), and float8 arithmetic would need the same. So float8 is storage only: the
lowering decodes each float8 operand to f32 (exact), computes in f32 and encodes the result
once, rounding to nearest even as ml_dtypes does (which also rounds f64 through f32 first).

The four formats, as ml_dtypes defines them:

* ``f8E5M2``: IEEE-like, bias 15, infinities and NaNs; overflow gives inf.
* ``f8E4M3FN``: bias 7, no infinities, NaN = S.1111.111, max 448; overflow and inf give NaN.
* ``f8E4M3FNUZ`` / ``f8E5M2FNUZ``: bias 8 / 16, no infinities, no -0; 0x80 is the one NaN;
  overflow and inf give NaN, and a negative value that rounds to 0 gives +0.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlir import ir
from mlir.dialects import arith, math

F = arith.CmpFPredicate
I = arith.CmpIPredicate


@dataclass(frozen=True)
class Format:
    exp_bits: int
    man_bits: int
    bias: int
    ieee: bool  # infinities and NaN exponent (E5M2); else no infinities
    fnuz: bool  # 0x80 is NaN, no -0

    @property
    def max_code(self) -> int:
        """The bit pattern (without sign) of the largest finite value."""
        if self.ieee:
            return ((1 << self.exp_bits) - 2) << self.man_bits | ((1 << self.man_bits) - 1)
        if self.fnuz:
            return 0x7F
        return 0x7E  # E4M3FN: 0x7F is NaN


FORMATS = {
    "f8E5M2": Format(5, 2, 15, ieee=True, fnuz=False),
    "f8E4M3FN": Format(4, 3, 7, ieee=False, fnuz=False),
    "f8E4M3FNUZ": Format(4, 3, 8, ieee=False, fnuz=True),
    "f8E5M2FNUZ": Format(5, 2, 16, ieee=False, fnuz=True),
}


def is_float8(mo_element: str) -> bool:
    return mo_element in FORMATS


def _i32(v: int) -> ir.Value:
    t = ir.IntegerType.get_signless(32)
    return arith.constant(t, ir.IntegerAttr.get(t, v))


def _f32(v: float) -> ir.Value:
    t = ir.F32Type.get()
    return arith.constant(t, ir.FloatAttr.get(t, v))


def decode(x: ir.Value, mo_element: str) -> ir.Value:
    """A float8 scalar as the f32 of the same value (exact)."""
    fmt = FORMATS[mo_element]
    i8, i32 = ir.IntegerType.get_signless(8), ir.IntegerType.get_signless(32)
    code = arith.extui(i32, arith.bitcast(i8, x))
    m_bits = fmt.man_bits
    mag = arith.andi(code, _i32(0x7F))
    e = arith.shrui(mag, _i32(m_bits))
    m = arith.andi(mag, _i32((1 << m_bits) - 1))
    # Normal: rebias the exponent and move the mantissa to the top of f32's.
    exp_f32 = arith.addi(e, _i32(127 - fmt.bias))
    if fmt.ieee:  # the all-ones exponent is inf/NaN, as in f32
        top = (1 << fmt.exp_bits) - 1
        exp_f32 = arith.select(arith.cmpi(I.eq, e, _i32(top)), _i32(255), exp_f32)
    normal = arith.ori(arith.shli(exp_f32, _i32(23)), arith.shli(m, _i32(23 - m_bits)))
    # Subnormal (e == 0): m * 2^(1 - bias - m_bits), exact in f32.
    sub = arith.bitcast(i32, arith.mulf(arith.uitofp(ir.F32Type.get(), m),
                                        _f32(2.0 ** (1 - fmt.bias - m_bits))))
    bits = arith.select(arith.cmpi(I.eq, e, _i32(0)), sub, normal)
    bits = arith.ori(bits, arith.shli(arith.shrui(code, _i32(7)), _i32(31)))
    value = arith.bitcast(ir.F32Type.get(), bits)
    nan = _f32(float("nan"))
    if fmt.fnuz:
        return arith.select(arith.cmpi(I.eq, code, _i32(0x80)), nan, value)
    if not fmt.ieee:  # E4M3FN: S.1111.111
        return arith.select(arith.cmpi(I.eq, mag, _i32(0x7F)), nan, value)
    return value


def encode(x: ir.Value, mo_element: str) -> ir.Value:
    """An f32 scalar rounded to nearest even float8 (overflow: inf or NaN, as ml_dtypes)."""
    fmt = FORMATS[mo_element]
    i32 = ir.IntegerType.get_signless(32)
    m_bits = fmt.man_bits
    shift = 23 - m_bits
    bits = arith.bitcast(i32, x)
    sign = arith.shrui(bits, _i32(31))
    a_bits = arith.andi(bits, _i32(0x7FFFFFFF))
    a = arith.bitcast(ir.F32Type.get(), a_bits)
    # Normal range: round f32's mantissa to m_bits (a carry moves into the exponent, as it
    # should), then rebias: code = (f32 exponent << m_bits | mantissa) - (127 - bias) << m_bits.
    odd = arith.andi(arith.shrui(a_bits, _i32(shift)), _i32(1))
    rounded = arith.addi(a_bits, arith.addi(_i32((1 << (shift - 1)) - 1), odd))
    normal = arith.subi(arith.shrui(rounded, _i32(shift)), _i32((127 - fmt.bias) << m_bits))
    # Below the smallest normal: the code is the value in units of the smallest subnormal,
    # rounded to even (exact scaling by a power of two; 2^m_bits is the smallest normal's code).
    # (Clamped, so that the unused lane never converts an out-of-range float.)
    smallest_normal = _f32(2.0 ** (1 - fmt.bias))
    units = math.roundeven(arith.mulf(arith.minimumf(a, smallest_normal),
                                      _f32(2.0 ** (fmt.bias - 1 + m_bits))))
    sub = arith.fptoui(i32, units)
    code = arith.select(arith.cmpf(F.OLT, a, smallest_normal), sub, normal)
    # Too large (inf included): inf where the format has it, else NaN.
    nan_code = 0x7E if fmt.ieee else 0x80 if fmt.fnuz else 0x7F
    over = fmt.max_code + 1 if fmt.ieee else nan_code
    code = arith.select(arith.cmpi(I.sgt, code, _i32(fmt.max_code)), _i32(over), code)
    if fmt.fnuz:
        # No -0: a sign only on a nonzero, non-NaN code.
        signed = arith.andi(arith.cmpi(I.ne, code, _i32(0)), arith.cmpi(I.ne, code, _i32(0x80)))
        sign = arith.select(signed, sign, _i32(0))
    code = arith.ori(code, arith.shli(sign, _i32(7)))
    is_nan = arith.cmpf(F.UNO, x, x)
    code = arith.select(is_nan, _i32(nan_code), code)
    i8 = ir.IntegerType.get_signless(8)
    return arith.bitcast(ir.Type.parse(mo_element), arith.trunci(i8, code))


__all__ = ["FORMATS", "decode", "encode", "is_float8"]
