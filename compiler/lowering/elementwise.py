"""Elementwise unary/binary ops, where and cast: one linalg.generic each, broadcast by maps.

The scalar semantics follow numpy: integer ``//`` and ``%`` floor like Python (x // 0 == 0 and
x % 0 == 0, as numpy returns, instead of a trap), float comparisons are false with NaN except
``!=``, max/min propagate NaN, round is half-to-even.
"""

from __future__ import annotations

import math as pymath
from collections.abc import Callable

from mlir import ir
from mlir.dialects import arith, math

from max.compiler.lowering.builders import PARALLEL, broadcast_map, generic, identity_map, scalar
from max.compiler.lowering.context import LoweringContext, element_type, from_i1, kind_of, to_i1
from max.compiler.lowering.float8 import decode, encode, is_float8
from max.compiler.lowering.registry import lowering

F = arith.CmpFPredicate
I = arith.CmpIPredicate
Scalar = Callable[..., ir.Value]


def _f(fn: Callable[[ir.Value], ir.Value]) -> Callable[[ir.Value], ir.Value]:
    """Runs a transcendental in f32 at least: libm and the expansions know only f32/f64."""

    def wrapped(x: ir.Value) -> ir.Value:
        t = x.type
        if ir.FloatType(t).width >= 32:
            return fn(x)
        f32 = ir.F32Type.get()
        return arith.truncf(t, fn(arith.extf(f32, x)))

    return wrapped


def _sigmoid(x: ir.Value) -> ir.Value:
    one = scalar(x.type, 1.0)
    return arith.divf(one, arith.addf(one, math.exp(arith.negf(x))))


def _log1p(x: ir.Value) -> ir.Value:
    """log1p: f64 as ``log(u) - ((u - 1) - x) / u``, u = 1 + x (<= 1 ulp, as libm's log1p).

    MathToLLVM expands ``math.log1p`` to ``log(1 + x)``, which loses everything near 0
    (log1p(1e-30) = 0). The correction term is the rounding error of ``1 + x`` (exact, by
    Sterbenz), divided by u: the first-order term of log(u + err). f32 and narrower keep
    ``math.log1p``, which fast_math replaces by a polynomial of the same accuracy.
    """
    if ir.FloatType(x.type).width != 64:
        return _f(math.log1p)(x)
    one = scalar(x.type, 1.0)
    u = arith.addf(x, one)
    r = arith.subf(math.log(u), arith.divf(arith.subf(arith.subf(u, one), x), u))
    # x = -1: -inf - 0/0; x = inf: log(inf) - (inf - inf)/inf. Both would be NaN.
    r = arith.select(arith.cmpf(F.OEQ, x, scalar(x.type, -1.0)), scalar(x.type, -pymath.inf), r)
    return arith.select(arith.cmpf(F.OEQ, x, scalar(x.type, pymath.inf)), x, r)


def _acos(x: ir.Value) -> ir.Value:
    """acos of x clamped to [-1, 1] (MAX's domain rule); NaN stays NaN (each select's compare
    is false for it: one vminps and one vmaxps, not minimumf's NaN-propagating sequence)."""
    one, minus_one = scalar(x.type, 1.0), scalar(x.type, -1.0)
    x = arith.select(arith.cmpf(F.OGT, x, one), one, x)
    return math.acos(arith.select(arith.cmpf(F.OLT, x, minus_one), minus_one, x))


def _gelu(approximate: str) -> Callable[[ir.Value], ir.Value]:
    def erf_gelu(x: ir.Value) -> ir.Value:
        t = x.type
        if ir.FloatType(t).width == 64:
            # 1 + erf(z) cancels for negative z (37 ulp off at x = -5); erfc(-z) is the same
            # value without the cancellation, at libm accuracy.
            inner = math.erfc(arith.mulf(x, scalar(t, -1 / pymath.sqrt(2.0))))
            return arith.mulf(arith.mulf(x, scalar(t, 0.5)), inner)
        # f32: fast_math's polynomial erf keeps this vector code; its error dominates anyway.
        inner = math.erf(arith.mulf(x, scalar(t, 1 / pymath.sqrt(2.0))))
        return arith.mulf(arith.mulf(x, scalar(t, 0.5)), arith.addf(inner, scalar(t, 1.0)))

    def tanh_gelu(x: ir.Value) -> ir.Value:
        t = x.type
        cube = arith.mulf(arith.mulf(x, x), x)
        u = arith.addf(x, arith.mulf(cube, scalar(t, 0.044715)))
        th = math.tanh(arith.mulf(u, scalar(t, pymath.sqrt(2 / pymath.pi))))
        return arith.mulf(arith.mulf(x, scalar(t, 0.5)), arith.addf(th, scalar(t, 1.0)))

    def quick_gelu(x: ir.Value) -> ir.Value:
        return arith.mulf(x, _sigmoid(arith.mulf(x, scalar(x.type, 1.702))))

    table = {"none": erf_gelu, "tanh": tanh_gelu, "quick": quick_gelu}
    return _f(table[approximate])


# Unary ops: name -> {kind: scalar fn}; a kind left out is a CompilationError.
UNARY: dict[str, dict[str, Callable[[ir.Value], ir.Value]]] = {
    "abs": {"float": math.absf, "sint": math.absi, "uint": lambda x: x, "bool": lambda x: x},
    "acos": {"float": _f(_acos)},
    "exp": {"float": _f(math.exp)},
    "log": {"float": _f(math.log)},
    "log1p": {"float": _log1p},
    "sqrt": {"float": _f(math.sqrt)},
    "rsqrt": {"float": _f(lambda x: arith.divf(scalar(x.type, 1.0), math.sqrt(x)))},
    "tanh": {"float": _f(math.tanh)},
    "sigmoid": {"float": _f(_sigmoid)},
    "relu": {
        "float": lambda x: arith.maximumf(x, scalar(x.type, 0.0)),
        "sint": lambda x: arith.maxsi(x, scalar(x.type, 0)),
        "uint": lambda x: x,
    },
    "silu": {"float": _f(lambda x: arith.mulf(x, _sigmoid(x)))},
    "sin": {"float": _f(math.sin)},
    "cos": {"float": _f(math.cos)},
    "erf": {"float": _f(math.erf)},
    "floor": {"float": math.floor, "sint": lambda x: x, "uint": lambda x: x},
    "round": {"float": math.roundeven, "sint": lambda x: x, "uint": lambda x: x},
    "trunc": {"float": math.trunc, "sint": lambda x: x, "uint": lambda x: x},
    "negate": {
        "float": arith.negf,
        "sint": lambda x: arith.subi(scalar(x.type, 0), x),
        "uint": lambda x: arith.subi(scalar(x.type, 0), x),
    },
    "logical_not": {"bool": lambda x: arith.xori(x, scalar(x.type, 1))},
    "is_nan": {"float": lambda x: arith.cmpf(F.UNO, x, x)},
    "is_inf": {"float": lambda x: arith.cmpf(F.OEQ, math.absf(x), scalar(x.type, pymath.inf))},
}


def _floordiv_s(a: ir.Value, b: ir.Value) -> ir.Value:
    """Python a // b for signed ints; b == 0 gives 0 and MIN // -1 wraps, as numpy."""
    t = a.type
    zero, one, minus1 = scalar(t, 0), scalar(t, 1), scalar(t, -1)
    # Dividing by 0 or -1 would trap (SIGFPE on MIN / -1): divide by 1 there and fix up.
    bad = arith.ori(arith.cmpi(I.eq, b, zero), arith.cmpi(I.eq, b, minus1))
    safe = arith.select(bad, one, b)
    q = arith.divsi(a, safe)
    r = arith.remsi(a, safe)
    adjust = arith.andi(arith.cmpi(I.ne, r, zero),
                        arith.cmpi(I.ne, arith.cmpi(I.slt, r, zero), arith.cmpi(I.slt, safe, zero)))
    q = arith.select(adjust, arith.subi(q, one), q)
    special = arith.select(arith.cmpi(I.eq, b, zero), zero, arith.subi(zero, a))
    return arith.select(bad, special, q)


def _mod_s(a: ir.Value, b: ir.Value) -> ir.Value:
    """Python a % b for signed ints (sign of the divisor); b == 0 gives 0."""
    t = a.type
    zero, one = scalar(t, 0), scalar(t, 1)
    bad = arith.ori(arith.cmpi(I.eq, b, zero), arith.cmpi(I.eq, b, scalar(t, -1)))
    r = arith.remsi(a, arith.select(bad, one, b))
    adjust = arith.andi(arith.cmpi(I.ne, r, zero),
                        arith.cmpi(I.ne, arith.cmpi(I.slt, r, zero), arith.cmpi(I.slt, b, zero)))
    return arith.select(bad, zero, arith.select(adjust, arith.addi(r, b), r))


def _udiv(fn: Scalar) -> Scalar:
    """Unsigned div/rem with x / 0 == 0 instead of a trap."""

    def wrapped(a: ir.Value, b: ir.Value) -> ir.Value:
        zero = scalar(a.type, 0)
        is0 = arith.cmpi(I.eq, b, zero)
        return arith.select(is0, zero, fn(a, arith.select(is0, scalar(a.type, 1), b)))

    return wrapped


def _mod_f(a: ir.Value, b: ir.Value) -> ir.Value:
    """numpy float mod: fmod, moved to the divisor's sign."""
    zero = scalar(a.type, 0.0)
    r = arith.remf(a, b)
    adjust = arith.andi(arith.cmpf(F.ONE, r, zero),
                        arith.cmpi(I.ne, arith.cmpf(F.OLT, r, zero), arith.cmpf(F.OLT, b, zero)))
    return arith.select(adjust, arith.addf(r, b), r)


def _f2(fn: Scalar) -> Scalar:
    """Binary version of :func:`_f`."""

    def wrapped(a: ir.Value, b: ir.Value) -> ir.Value:
        t = a.type
        if ir.FloatType(t).width >= 32:
            return fn(a, b)
        f32 = ir.F32Type.get()
        return arith.truncf(t, fn(arith.extf(f32, a), arith.extf(f32, b)))

    return wrapped


def _cmp(fpred: F, spred: I, upred: I) -> dict[str, Scalar]:
    return {
        "float": lambda a, b: arith.cmpf(fpred, a, b),
        "sint": lambda a, b: arith.cmpi(spred, a, b),
        "uint": lambda a, b: arith.cmpi(upred, a, b),
        "bool": lambda a, b: arith.cmpi(upred, a, b),
    }


BINARY: dict[str, dict[str, Scalar]] = {
    "add": {"float": arith.addf, "sint": arith.addi, "uint": arith.addi, "bool": arith.ori},
    "sub": {"float": arith.subf, "sint": arith.subi, "uint": arith.subi, "bool": arith.xori},
    "mul": {"float": arith.mulf, "sint": arith.muli, "uint": arith.muli, "bool": arith.andi},
    "div": {"float": arith.divf, "sint": _floordiv_s, "uint": _udiv(arith.divui)},
    "mod": {"float": _mod_f, "sint": _mod_s, "uint": _udiv(arith.remui)},
    "pow": {"float": _f2(math.powf), "sint": math.ipowi, "uint": math.ipowi},
    "max": {"float": arith.maximumf, "sint": arith.maxsi, "uint": arith.maxui, "bool": arith.ori},
    "min": {"float": arith.minimumf, "sint": arith.minsi, "uint": arith.minui, "bool": arith.andi},
    "equal": _cmp(F.OEQ, I.eq, I.eq),
    "not_equal": _cmp(F.UNE, I.ne, I.ne),
    "greater": _cmp(F.OGT, I.sgt, I.ugt),
    "greater_equal": _cmp(F.OGE, I.sge, I.uge),
    "logical_and": {"bool": arith.andi},
    "logical_or": {"bool": arith.ori},
    "logical_xor": {"bool": arith.xori},
}


def _pick(ctx: LoweringContext, table: dict[str, Scalar], mo_element: str) -> Scalar:
    kind = kind_of(mo_element)
    if kind not in table:
        raise ctx.error(f"not defined for element type {mo_element}")
    return table[kind]


def _elementwise(ctx: LoweringContext, fn: Scalar, *, float8_in_f32: bool = True) -> list[ir.Value]:
    """One linalg.generic over the result shape, each operand read through its broadcast map.

    float8 operands are decoded to f32 for ``fn`` and a float8 result encoded from f32
    (``float8_in_f32``; casts convert float8 themselves).
    """
    out_t = ctx.result_types[0]
    for t in ctx.operand_types:
        if t.rank > out_t.rank:
            raise ctx.error(f"operand rank {t.rank} exceeds result rank {out_t.rank}")
    maps = [broadcast_map(t, out_t) for t in ctx.operand_types] + [identity_map(out_t.rank)]
    elements = [t.element_type for t in ctx.operand_types]
    f8_out = float8_in_f32 and is_float8(out_t.element_type)

    def load(a: ir.Value, element: str) -> ir.Value:
        # bool is stored as i8 0/1 but computed on as i1.
        if element == "i1":
            return to_i1(a)
        return decode(a, element) if float8_in_f32 and is_float8(element) else a

    def body(*args: ir.Value) -> ir.Value:
        r = fn(*[load(a, e) for a, e in zip(args[:-1], elements)])
        if f8_out:
            return encode(r, out_t.element_type)
        return from_i1(r) if out_t.element_type == "i1" else r

    return generic(ctx.operands, [ctx.empty(out_t)], maps, [PARALLEL] * out_t.rank, body)


def _unary_rule(name: str) -> None:
    @lowering(f"mo.{name}")
    def rule(ctx: LoweringContext) -> list[ir.Value]:
        return _elementwise(ctx, _pick(ctx, UNARY[name], ctx.operand_types[0].element_type))


def _binary_rule(name: str) -> None:
    @lowering(f"mo.{name}")
    def rule(ctx: LoweringContext) -> list[ir.Value]:
        a, b = ctx.operand_types
        if a.element_type != b.element_type:
            raise ctx.error(f"operand dtypes differ: {a.element_type} vs {b.element_type}")
        return _elementwise(ctx, _pick(ctx, BINARY[name], a.element_type))


for _name in UNARY:
    _unary_rule(_name)
for _name in BINARY:
    _binary_rule(_name)


@lowering("mo.gelu")
def _gelu_rule(ctx: LoweringContext) -> list[ir.Value]:
    approximate = ir.StringAttr(ctx.attr("approximate")).value
    if approximate not in ("none", "tanh", "quick"):
        raise ctx.error(f"unknown approximate={approximate!r}")
    if kind_of(ctx.operand_types[0].element_type) != "float":
        raise ctx.error("gelu needs a float operand")
    return _elementwise(ctx, _gelu(approximate))


@lowering("mo.where")
def _where(ctx: LoweringContext) -> list[ir.Value]:
    if ctx.operand_types[0].element_type != "i1":
        raise ctx.error("condition must be bool")
    return _elementwise(ctx, arith.select)


def _f64_to_f32_odd(x: ir.Value) -> ir.Value:
    """f64 -> f32 rounded to odd: rounding that once more to f16 is correctly rounded.

    Two round-to-nearest steps (f64 -> f32 -> f16) would round some halfway cases the wrong
    way (1 + 2^-11 + 2^-40 -> 1.0). Round to odd (truncate, then set the last bit when
    inexact) keeps what the second rounding needs, as f32 has more than 11 + 2 bits.
    """
    f32, i32 = ir.F32Type.get(), ir.IntegerType.get_signless(32)
    y = arith.truncf(f32, x)
    back = arith.extf(x.type, y)
    bits = arith.bitcast(i32, y)
    # Rounded away from zero (overflow to inf included): one step back towards zero.
    away = arith.cmpf(F.OGT, math.absf(back), math.absf(x))
    bits = arith.select(away, arith.subi(bits, scalar(i32, 1)), bits)
    inexact = arith.cmpf(F.ONE, back, x)  # false for NaN and exact values
    bits = arith.select(inexact, arith.ori(bits, scalar(i32, 1)), bits)
    return arith.bitcast(f32, bits)


def convert_scalar(x: ir.Value, src: str, dst: str) -> ir.Value:
    """numpy ``astype`` of one scalar between MO element types (float -> int truncates)."""
    if src == dst:
        return x
    # float8 goes through f32, both ways (exact from float8; ml_dtypes rounds via f32 too).
    if is_float8(src):
        return convert_scalar(decode(x, src), "f32", dst)
    if is_float8(dst):
        return encode(convert_scalar(x, src, "f32"), dst)
    sk, dk = kind_of(src), kind_of(dst)
    t = ir.IntegerType.get_signless(1) if dk == "bool" else element_type(dst)
    if dk == "bool":
        if sk == "float":
            return arith.cmpf(F.UNE, x, scalar(x.type, 0.0))
        return arith.cmpi(I.ne, x, scalar(x.type, 0))
    if sk == "float" and dk == "float":
        sw, dw = ir.FloatType(x.type).width, ir.FloatType(t).width
        if sw == dw:  # f16 <-> bf16: go through f32
            return arith.truncf(t, arith.extf(ir.F32Type.get(), x))
        if sw == 64 and dw < 32:
            # Never f64 -> 16 bits directly: LLVM calls __truncdfbf2/__truncdfhf2, which the
            # system's libgcc may lack. float16 rounds once, as numpy does; bfloat16 rounds
            # through f32 (twice), as ml_dtypes and torch do: 1 + 2^-8 + 2^-30 -> 1.0.
            if isinstance(t, ir.F16Type):
                return arith.truncf(t, _f64_to_f32_odd(x))
            return arith.truncf(t, arith.truncf(ir.F32Type.get(), x))
        return arith.extf(t, x) if dw > sw else arith.truncf(t, x)
    if dk == "float":
        return arith.sitofp(t, x) if sk == "sint" else arith.uitofp(t, x)
    if sk == "float":
        # NaN/inf/out-of-range are undefined in numpy too; fptosi gives poison, never a trap.
        return arith.fptosi(t, x) if dk == "sint" else arith.fptoui(t, x)
    sw, dw = ir.IntegerType(x.type).width, ir.IntegerType(t).width
    if dw == sw:
        return x
    if dw < sw:
        return arith.trunci(t, x)
    return arith.extsi(t, x) if sk == "sint" else arith.extui(t, x)


@lowering("mo.cast")
def _cast(ctx: LoweringContext) -> list[ir.Value]:
    src, dst = ctx.operand_types[0].element_type, ctx.result_types[0].element_type
    return _elementwise(ctx, lambda x: convert_scalar(x, src, dst), float8_in_f32=False)
