"""Small builders the vector math expansions share (``fast_pow``, ``fast_trig``,
``fast_fmod``): constants and types of a value's shape, scalar or vector, and the run-time
choice between libm and the fast code."""

from __future__ import annotations

import math
from collections.abc import Callable

from mlir import ir
from mlir.dialects import arith, llvm, scf, vector


def like(t: ir.Type, element: ir.Type) -> ir.Type:
    """``t``'s shape (scalar or vector) with ``element``."""
    if isinstance(t, ir.VectorType):
        return ir.VectorType.get(ir.VectorType(t).shape, element)
    return element


def splat(t: ir.Type, value: float | int) -> ir.Value:
    """A constant of ``t`` (a scalar or vector float or integer type)."""
    et = ir.VectorType(t).element_type if isinstance(t, ir.VectorType) else t
    attr = (ir.IntegerAttr.get(et, int(value)) if isinstance(et, ir.IntegerType)
            else ir.FloatAttr.get(et, value))
    if isinstance(t, ir.VectorType):
        return arith.constant(t, ir.DenseElementsAttr.get_splat(t, attr))
    return arith.constant(t, attr)


def any_lane(mask: ir.Value) -> ir.Value:
    """An i1: whether any lane of ``mask`` (an i1 or a vector of them, of any rank) is set."""
    if not isinstance(mask.type, ir.VectorType):
        return mask
    return vector.ReductionOp(ir.IntegerType.get_signless(1), vector.CombiningKind.OR,
                              _as_1d(mask)).result


def _as_1d(v: ir.Value) -> ir.Value:
    """``v`` as a scalar or 1-D vector (LLVM's intrinsics take no n-D vectors)."""
    if not isinstance(v.type, ir.VectorType) or ir.VectorType(v.type).rank == 1:
        return v
    vt = ir.VectorType(v.type)
    return vector.ShapeCastOp(ir.VectorType.get([math.prod(vt.shape)], vt.element_type),
                              v).result


def _as_type(v: ir.Value, t: ir.Type) -> ir.Value:
    """``v`` (from :func:`_as_1d`) back in the shape of ``t``."""
    return v if v.type == t else vector.ShapeCastOp(t, v).result


def lrint(x: ir.Value) -> ir.Value:
    """The i32 nearest to each f32 lane of ``x``, ties to even: one ``cvtps2dq``, where
    ``roundeven`` then ``fptosi`` are three instructions with AVX-512. A lane beyond the i32
    range, or NaN, gives an unspecified value."""
    i32 = ir.IntegerType.get_signless(32)
    x1 = _as_1d(x)
    return _as_type(llvm.intr_lrint(like(x1.type, i32), x1), like(x.type, i32))


def ldexp(y: ir.Value, n: ir.Value) -> ir.Value:
    """``y * 2^n`` (f32 ``y``, i32 ``n``) rounded once: one ``vscalefps`` where
    :attr:`~max.compiler.host_cpu.CpuDescription.has_scalef` holds, a libm call per lane
    elsewhere (check it first)."""
    y1 = _as_1d(y)
    # Not llvm.intr.ldexp: its exponent may only be a scalar.
    return _as_type(llvm.call_intrinsic(y1.type, "llvm.ldexp", [y1, _as_1d(n)], [], []),
                    y.type)


def libm_where_any(mask: ir.Value, result_type: ir.Type, libm: Callable[[], ir.Value],
                   fast: Callable[[], ir.Value]) -> ir.Value:
    """``libm()`` (the original op: libm calls lane by lane) where any lane of ``mask`` is
    set, else ``fast()``: chosen at run time by an ``scf.if``."""
    branch = scf.IfOp(any_lane(mask), [result_type], has_else=True)
    with ir.InsertionPoint(branch.then_block):
        scf.YieldOp([libm()])
    with ir.InsertionPoint(branch.else_block):
        scf.YieldOp([fast()])
    return branch.results[0]


__all__ = ["any_lane", "ldexp", "libm_where_any", "like", "lrint", "splat"]
