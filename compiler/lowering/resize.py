"""mo.resize_bicubic: 4 x 4 clamped taps an output pixel (A = -0.75, half-pixel centers).

Static sizes: separable, each tap's input index and weight a compile-time table (the taps of
an output row or column are the same for every image and channel). Four linalg ops: x
transposed to [N, C, W, H]; the horizontal pass, ``t[n, c, ox, :] = sum_j wx_j[ox] *
xT[n, c, ix_j[ox], :]``; t transposed back; the vertical pass, ``out[n, c, oy, :] = sum_i
wy_i[oy] * t[n, c, iy_i[oy], :]``. Each pass reads whole contiguous rows at a row index
uniform along the row, the shape of a row gather, so both are vector code (``gather_rows``),
as are the transposes. Symbolic sizes: one linalg.generic over the output computing its taps
and reading 16 clamped elements by ``tensor.extract`` (plain loops, recorded). An input whose
H or W is 0 while the output is not empty has nothing to read: the op's runtime check reports
it (a symbolic dim that is 0 at run time) and no read happens.
"""

from __future__ import annotations

import numpy as np
from mlir import ir
from mlir.dialects import arith, math, scf, tensor

from max.compiler.lowering.builders import (
    PARALLEL,
    dims_map,
    generic,
    identity_map,
    linalg_index,
    scalar,
    transposed,
)
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


def tap_tables(n: int, m: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """([4, m] int32 clamped input indices, [4, m] weights) of the m outputs resampled from n
    inputs, in ``dtype`` arithmetic as :func:`_taps` computes them."""
    f = np.dtype(dtype).type
    o = np.arange(m).astype(dtype)
    src = (o + f(0.5)) * (f(n) / f(m)) - f(0.5)
    base = np.floor(src)
    t = src - base
    idx = np.stack([np.clip(base.astype(np.int64) + k - 1, 0, n - 1) for k in range(4)])

    def near(v: np.ndarray) -> np.ndarray:
        return (f(A + 2) * v - f(A + 3)) * v * v + f(1.0)

    def far(v: np.ndarray) -> np.ndarray:
        return ((f(A) * v - f(5 * A)) * v + f(8 * A)) * v - f(4 * A)

    w = np.stack([far(t + f(1.0)), near(t), near(f(1.0) - t), far(f(2.0) - t)])
    return idx.astype(np.int32), w.astype(dtype)


def _table(values: np.ndarray, t: ir.Type) -> ir.Value:
    return arith.constant(ir.RankedTensorType.get([values.size], t),
                          ir.DenseElementsAttr.get(np.ascontiguousarray(values), type=t))


def _transpose_hw(x: ir.Value) -> ir.Value:
    """[N, C, A, B] -> [N, C, B, A]: the named op, which elementwise fusion leaves alone (a
    generic would be fused into the pass before it, whose reads would then be gathers)."""
    return transposed(x, [0, 1, 3, 2])


def _rows_pass(src: ir.Value, m: int, idx: np.ndarray, weights: np.ndarray) -> ir.Value:
    """``out[n, c, o, :] = sum_k weights[k, o] * src[n, c, idx[k, o], :]`` for o < m."""
    st = ir.RankedTensorType(src.type)
    n, c, _, row = st.shape
    et = st.element_type
    i32 = ir.IntegerType.get_signless(32)
    tables = [_table(idx[k], i32) for k in range(4)] + [_table(weights[k], et)
                                                       for k in range(4)]
    index = ir.IndexType.get()

    def body(*args: ir.Value) -> ir.Value:
        at, wk = args[:4], args[4:8]
        lead = [linalg_index(0), linalg_index(1)]
        last = linalg_index(3)
        acc = None
        for a, w in zip(at, wk):
            term = arith.mulf(w, tensor.extract(src, [*lead, arith.index_cast(index, a), last]))
            acc = term if acc is None else arith.addf(acc, term)
        return acc

    out = tensor.empty([n, c, m, row], et)
    return generic(tables, [out], [dims_map(4, [2])] * 8 + [identity_map(4)], [PARALLEL] * 4,
                   body)[0]


def _separable(x: ir.Value, oh: int, ow: int) -> ir.Value:
    xt = ir.RankedTensorType(x.type)
    _, _, h, w = xt.shape
    dtype = np.float64 if isinstance(xt.element_type, ir.F64Type) else np.float32
    ix, wx = tap_tables(w, ow, dtype)
    iy, wy = tap_tables(h, oh, dtype)
    across = _transpose_hw(_rows_pass(_transpose_hw(x), ow, ix, wx))  # [N, C, H, OW]
    return _rows_pass(across, oh, iy, wy)


@lowering("mo.resize_bicubic")
@in_f32
def _resize_bicubic(ctx: LoweringContext) -> list[ir.Value]:
    (x,), (x_t,), out_t = ctx.operands, ctx.operand_types, ctx.result_types[0]
    et = element_type(out_t.element_type)
    if all(isinstance(d, int) and d > 0 for d in (*x_t.dims, *out_t.dims)):
        return [_separable(x, *out_t.dims[2:])]
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
