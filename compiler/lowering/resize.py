"""mo.resize_bicubic -> one linalg.generic over the output reading 4 x 4 clamped taps.

The reads are ``tensor.extract`` at computed indices (a gather: plain loops, not vector
code). An input whose H or W is 0 while the output is not empty has nothing to read: the
op's runtime check reports it (a symbolic dim that is 0 at run time) and no read happens.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, math, scf, tensor

from max.compiler.lowering.builders import PARALLEL, generic, identity_map, linalg_index, scalar
from max.compiler.lowering.context import LoweringContext, element_type
from max.compiler.lowering.precision import in_f32
from max.compiler.lowering.registry import lowering
from max.dialects.mo.opdefs.resize import A

I = arith.CmpIPredicate


def _taps(ctx: LoweringContext, loop: int, n: ir.Value, m: ir.Value, ft: ir.Type
          ) -> tuple[list[ir.Value], list[ir.Value]]:
    """(4 clamped input indices, 4 weights) of output position ``linalg.index(loop)``."""
    index = ir.IndexType.get()
    i64 = ir.IntegerType.get_signless(64)

    def f(v: float) -> ir.Value:
        return scalar(ft, v)

    def to_float(v: ir.Value) -> ir.Value:
        return arith.sitofp(ft, arith.index_cast(i64, v))

    scale = arith.divf(to_float(n), to_float(m))
    src = arith.subf(arith.mulf(arith.addf(to_float(linalg_index(loop)), f(0.5)), scale), f(0.5))
    base = math.floor(src)
    t = arith.subf(src, base)
    b = arith.index_cast(index, arith.fptosi(i64, base))
    top = arith.maxsi(arith.subi(n, arith.constant(index, 1)), arith.constant(index, 0))
    idx = [arith.maxsi(arith.minsi(arith.addi(b, arith.constant(index, k - 1)), top),
                       arith.constant(index, 0)) for k in range(4)]

    def near(v: ir.Value) -> ir.Value:  # ((A + 2) v - (A + 3)) v v + 1
        p = arith.subf(arith.mulf(f(A + 2), v), f(A + 3))
        return arith.addf(arith.mulf(arith.mulf(p, v), v), f(1.0))

    def far(v: ir.Value) -> ir.Value:  # ((A v - 5 A) v + 8 A) v - 4 A
        p = arith.addf(arith.mulf(arith.subf(arith.mulf(f(A), v), f(5 * A)), v), f(8 * A))
        return arith.subf(arith.mulf(p, v), f(4 * A))

    one_minus = arith.subf(f(1.0), t)
    w = [far(arith.addf(t, f(1.0))), near(t), near(one_minus), far(arith.subf(f(2.0), t))]
    return idx, w


@lowering("mo.resize_bicubic")
@in_f32
def _resize_bicubic(ctx: LoweringContext) -> list[ir.Value]:
    (x,), (x_t,), out_t = ctx.operands, ctx.operand_types, ctx.result_types[0]
    et = element_type(out_t.element_type)
    h, w = (ctx.dim_value(d) for d in x_t.dims[2:])
    oh, ow = (ctx.dim_value(d) for d in out_t.dims[2:])
    index = ir.IndexType.get()
    maybe_empty = not all(isinstance(d, int) and d > 0 for d in x_t.dims[2:])
    zero = arith.constant(index, 0)
    nonempty = arith.andi(arith.cmpi(I.sgt, h, zero), arith.cmpi(I.sgt, w, zero))

    def body(_: ir.Value) -> ir.Value:
        ys, wy = _taps(ctx, 2, h, oh, et)
        xs, wx = _taps(ctx, 3, w, ow, et)
        nc = [linalg_index(0), linalg_index(1)]

        def value() -> ir.Value:
            acc = scalar(et, 0.0)
            for yi, wyi in zip(ys, wy):
                row = scalar(et, 0.0)
                for xj, wxj in zip(xs, wx):
                    row = arith.addf(row, arith.mulf(wxj, tensor.extract(x, [*nc, yi, xj])))
                acc = arith.addf(acc, arith.mulf(wyi, row))
            return acc

        if not maybe_empty:
            return value()
        if_op = scf.IfOp(nonempty, [et], has_else=True)
        with ir.InsertionPoint(if_op.then_block):
            scf.YieldOp([value()])
        with ir.InsertionPoint(if_op.else_block):
            scf.YieldOp([scalar(et, 0.0)])
        return if_op.results[0]

    out = generic([], [ctx.empty(out_t)], [identity_map(4)], [PARALLEL] * 4, body)[0]
    if maybe_empty:
        # Nothing to resample from, but something to produce: an error, not zeros.
        i8 = ir.IntegerType.get_signless(8)
        produces = arith.cmpi(I.sgt, arith.muli(oh, ow), zero)
        failed = arith.andi(produces, arith.xori(nonempty, arith.constant(
            ir.IntegerType.get_signless(1), 1)))
        where = str(ctx.op.location)
        where = "" if where == "loc(unknown)" else f" (at {where})"
        ctx.add_check(arith.extui(i8, failed),
                      f"mo.resize_bicubic: input {x_t.dims} has an empty spatial dim but the "
                      f"output {out_t.dims} does not{where}")
    return [out]
