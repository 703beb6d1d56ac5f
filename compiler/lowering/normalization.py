"""softmax and logsoftmax (max-subtracted, numerically stable) and layer_norm."""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, math

from max.compiler.lowering.builders import (
    PARALLEL,
    REDUCTION,
    dims_map,
    fill,
    generic,
    identity_map,
    scalar,
)
from max.compiler.lowering.context import LoweringContext, element_type, kind_of
from max.compiler.lowering.elementwise import BINARY
from max.compiler.lowering.precision import in_f32
from max.compiler.lowering.reduction import count, identity_value, index_to, reduce_axes
from max.compiler.lowering.registry import lowering


def _float_operand(ctx: LoweringContext) -> None:
    if kind_of(ctx.operand_types[0].element_type) != "float":
        raise ctx.error("needs a float operand")


def _softmax(ctx: LoweringContext, log: bool) -> list[ir.Value]:
    _float_operand(ctx)
    x, x_t = ctx.operands[0], ctx.operand_types[0]
    rank = x_t.rank
    axis = ctx.axis(rank)
    if axis == rank - 1 and rank >= 2:
        return _softmax_rows(ctx, x, x_t, log)
    et = x_t.element_type
    m = reduce_axes(ctx, x, x_t, [axis], BINARY["max"]["float"], identity_value("max", et),
                    keepdims=True)
    ident = identity_map(rank)
    row = dims_map(rank, [None if i == axis else i for i in range(rank)])
    par = [PARALLEL] * rank
    e = generic([x, m], [ctx.empty(x_t)], [ident, row, ident], par,
                lambda v, mv, _: math.exp(arith.subf(v, mv)))[0]
    s = reduce_axes(ctx, e, x_t, [axis], arith.addf, 0.0, keepdims=True)
    if log:
        return generic([x, m, s], [ctx.empty(x_t)], [ident, row, row, ident], par,
                       lambda v, mv, sv, _: arith.subf(arith.subf(v, mv), math.log(sv)))
    return generic([e, s], [ctx.empty(x_t)], [ident, row, ident], par,
                   lambda ev, sv, _: arith.divf(ev, sv))


def _softmax_rows(ctx: LoweringContext, x: ir.Value, x_t, log: bool) -> list[ir.Value]:
    """Softmax over the last axis as three row passes that read only ``x`` and row values.

    max, sum(exp(x - max)), then exp(x - max) / sum computed again: no full-size
    intermediate, so the CPU schedule (row_fusion) runs all three on one row while it is in
    L1, and memory sees one read of ``x`` and one write of the result. The row values are
    rank - 1 tensors read through a projection (no reshape for fusion to push around); the
    reciprocal and the log of the sum are row-invariant, hoisted out of the row's loop.
    """
    rank = x_t.rank
    et = element_type(x_t.element_type)
    row_t = x_t.with_dims(x_t.dims[:-1])
    ident = identity_map(rank)
    row = dims_map(rank, list(range(rank - 1)))
    red = [PARALLEL] * (rank - 1) + [REDUCTION]
    neg_inf = identity_value("max", x_t.element_type)
    m = generic([x], [fill(scalar(et, neg_inf), ctx.empty(row_t))], [ident, row], red,
                lambda v, a: BINARY["max"]["float"](v, a))[0]
    s = generic([x, m], [fill(scalar(et, 0.0), ctx.empty(row_t))], [ident, row, row], red,
                lambda v, mv, a: arith.addf(math.exp(arith.subf(v, mv)), a))[0]
    par = [PARALLEL] * rank
    if log:
        return generic([x, m, s], [ctx.empty(x_t)], [ident, row, row, ident], par,
                       lambda v, mv, sv, _: arith.subf(arith.subf(v, mv), math.log(sv)))
    return generic([x, m, s], [ctx.empty(x_t)], [ident, row, row, ident], par,
                   lambda v, mv, sv, _: arith.mulf(math.exp(arith.subf(v, mv)),
                                                   arith.divf(scalar(et, 1.0), sv)))


@lowering("mo.softmax")
@in_f32
def _softmax_rule(ctx: LoweringContext) -> list[ir.Value]:
    return _softmax(ctx, log=False)


@lowering("mo.logsoftmax")
@in_f32
def _logsoftmax_rule(ctx: LoweringContext) -> list[ir.Value]:
    return _softmax(ctx, log=True)


@lowering("mo.layer_norm")
@in_f32
def _layer_norm(ctx: LoweringContext) -> list[ir.Value]:
    _float_operand(ctx)
    x, gamma, beta = ctx.operands
    x_t, g_t, b_t = ctx.operand_types
    if g_t.dims != b_t.dims:
        raise ctx.error(f"gamma {g_t.dims} and beta {b_t.dims} differ in shape")
    if not 0 < g_t.rank <= x_t.rank:
        raise ctx.error(f"gamma rank {g_t.rank} does not fit x rank {x_t.rank}")
    eps = ir.FloatAttr(ctx.attr("epsilon")).value
    rank = x_t.rank
    lead = rank - g_t.rank
    axes = list(range(lead, rank))
    t = element_type(x_t.element_type)
    n = index_to(t, count(ctx, x_t, axes))
    ident = identity_map(rank)
    row = dims_map(rank, list(range(lead)))
    lead_map = identity_map(lead)
    par_lead = [PARALLEL] * lead
    s = reduce_axes(ctx, x, x_t, axes, arith.addf, 0.0, keepdims=False)
    lead_t = x_t.with_dims(x_t.dims[:lead])
    mean = generic([s], [ctx.empty(lead_t)], [lead_map] * 2, par_lead,
                   lambda v, _: arith.divf(v, n))[0]
    # Two passes (mean, then squared deviations) keep the variance accurate.
    dev = generic([x, mean], [ctx.empty(x_t)], [ident, row, ident], [PARALLEL] * rank,
                  lambda v, mv, _: (lambda d: arith.mulf(d, d))(arith.subf(v, mv)))[0]
    ss = reduce_axes(ctx, dev, x_t, axes, arith.addf, 0.0, keepdims=False)
    inv = generic([ss], [ctx.empty(lead_t)], [lead_map] * 2, par_lead,
                  lambda v, _: arith.divf(scalar(t, 1.0), math.sqrt(
                      arith.addf(arith.divf(v, n), scalar(t, eps)))))[0]
    tail = dims_map(rank, axes)
    return generic(
        [x, mean, inv, gamma, beta], [ctx.empty(x_t)], [ident, row, row, tail, tail, ident],
        [PARALLEL] * rank,
        lambda v, mv, iv, g, b, _: arith.addf(arith.mulf(arith.mulf(arith.subf(v, mv), iv), g), b))
