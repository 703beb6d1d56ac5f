"""softmax and logsoftmax (max-subtracted, numerically stable) and layer_norm."""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, math, tensor

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
from max.compiler.lowering.exp_polynomial import LOG2E, POLY5, exp_over_2n
from max.compiler.lowering.precision import in_f32
from max.compiler.lowering.reduction import count, identity_value, index_to, reduce_axes
from max.compiler.lowering.registry import lowering
from max.dialects.mo.types import MOTensorType


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


# exp(y) for y = x - max <= 0 (f32): fast_math's reduction with the degree-5 polynomial (2.2
# ulp at most, exp_polynomial) and a cheaper 2^n, since y <= 0 needs no upper clamp and no
# two-factor 2^n. y is clamped to -88 from below, where n = -127 makes 2^n exactly 0: exp of
# a masked -inf is 0. NaN stays NaN (the clamp's compare is ordered), so a row with a NaN sums
# to NaN and is NaN, as numpy's.
_ROUND = 12582912.0  # 1.5 * 2^23: t = y * log2e + _ROUND rounds to an integer n in its low bits


def _exp_nonpositive(y: ir.Value) -> ir.Value:
    """exp(y) for f32 y <= 0 (or NaN), in 13 vector instructions (Cephes' scheme ~30)."""
    f32, i32 = y.type, ir.IntegerType.get_signless(32)
    c = lambda v: scalar(f32, v)  # noqa: E731
    low = arith.cmpf(arith.CmpFPredicate.OLT, y, c(-88.0))  # false for NaN
    y = arith.select(low, c(-88.0), y)
    t = math.fma(y, c(LOG2E), c(_ROUND))
    n = arith.subf(t, c(_ROUND))
    poly = exp_over_2n(y, n, c, POLY5)
    # t's bits are 0x4B400000 + n, n in [-127, 0]: (bits + 127) << 23 is 2^n's (0 for -127).
    two_n = arith.shli(arith.addi(arith.bitcast(i32, t), scalar(i32, 127)), scalar(i32, 23))
    return arith.mulf(poly, arith.bitcast(f32, two_n))


def _exp_shifted(v: ir.Value, mv: ir.Value) -> ir.Value:
    """exp(v - mv), mv the row max."""
    y = arith.subf(v, mv)
    return _exp_nonpositive(y) if isinstance(y.type, ir.F32Type) else math.exp(y)


def _softmax_rows(ctx: LoweringContext, x: ir.Value, x_t: MOTensorType,
                  log: bool) -> list[ir.Value]:
    """Softmax over the last axis as row passes that share only row values.

    The row values (max, sum) are rank - 1 tensors read through a projection, with no reshape
    for fusion to push around: the CPU schedule (row_fusion) then runs every pass on one row
    while it is in L1, and memory sees one read of ``x`` and one write of the result.
    softmax: max; e = exp(x - max) (computed once, a row buffer once fused); sum(e);
    e * (1 / sum). logsoftmax: max; sum(exp(x - max)); x - max - log(sum). The reciprocal and
    the log are row-invariant: hoisted out of the row's vector loop.
    """
    rank = x_t.rank
    et = element_type(x_t.element_type)
    row_t = x_t.with_dims(x_t.dims[:-1])
    ident = identity_map(rank)
    row = dims_map(rank, list(range(rank - 1)))
    red = [PARALLEL] * (rank - 1) + [REDUCTION]
    par = [PARALLEL] * rank
    neg_inf = identity_value("max", x_t.element_type)
    # maxnumf (a NaN is skipped: one vmaxps and a blend, not maximumf's longer sequence): a
    # NaN still makes its row NaN through exp(NaN - max) = NaN in the sum.
    m = generic([x], [fill(scalar(et, neg_inf), ctx.empty(row_t))], [ident, row], red,
                lambda v, a: arith.maxnumf(v, a))[0]
    zero = fill(scalar(et, 0.0), ctx.empty(row_t))
    if log:
        s = generic([x, m], [zero], [ident, row, row], red,
                    lambda v, mv, a: arith.addf(_exp_shifted(v, mv), a))[0]
        return generic([x, m, s], [ctx.empty(x_t)], [ident, row, row, ident], par,
                       lambda v, mv, sv, _: arith.subf(arith.subf(v, mv), math.log(sv)))
    e = generic([x, m], [ctx.empty(x_t)], [ident, row, ident], par,
                lambda v, mv, _: _exp_shifted(v, mv))[0]
    s = generic([e], [zero], [ident, row], red, lambda v, a: arith.addf(v, a))[0]
    return generic([e, s], [ctx.empty(x_t)], [ident, row, ident], par,
                   lambda ev, sv, _: arith.mulf(ev, arith.divf(scalar(et, 1.0), sv)))


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
    if g_t.rank == 1 and lead >= 1 and _static_positive(x_t.dims[-1]):
        return _layer_norm_rows(ctx, x, x_t, gamma, beta, n, eps)
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


def _layer_norm_rows(ctx: LoweringContext, x: ir.Value, x_t: MOTensorType, gamma: ir.Value,
                     beta: ir.Value, n: ir.Value, eps: float) -> list[ir.Value]:
    """Layer norm over the last axis with the moments in one pass: the sums of ``x - k``
    and of its square, ``k`` the row's first element (the shifted-data algorithm: with
    ``k`` a sample of the row, ``s2 / n - (s1 / n)^2`` cancels little; the plain sums of
    ``x`` and ``x^2`` would lose the variance of rows whose mean is large against their
    spread). The two sums are two row reductions reading ``x`` and ``k``; their loops are
    fused into one after vectorization (:mod:`sibling_loops`), so each row is read for the
    moments once, then for the normalisation."""
    rank = x_t.rank
    lead = rank - 1
    t = element_type(x_t.element_type)
    lead_t = x_t.with_dims(x_t.dims[:lead])
    ident = identity_map(rank)
    row = dims_map(rank, list(range(lead)))
    lead_map = identity_map(lead)
    par_lead = [PARALLEL] * lead
    red = [PARALLEL] * lead + [REDUCTION]
    # k: column 0 of x, as a view (a slice, its unit axis collapsed): no op of its own, each
    # row loop reads its one element.
    dyn = [ctx.dim_value(d) for d in x_t.dims[:lead] if not isinstance(d, int)]
    static = [d if isinstance(d, int) else ir.ShapedType.get_dynamic_size()
              for d in x_t.dims[:lead]] + [1]
    et = element_type(x_t.element_type)
    column = tensor.extract_slice(ir.RankedTensorType.get(static, et), x, [], dyn, [],
                                  [0] * rank, static, [1] * rank)
    k = tensor.collapse_shape(ctx.tensor_type(lead_t), column,
                              [[i] for i in range(lead - 1)] + [[lead - 1, lead]])

    def sums(square: bool) -> ir.Value:
        def body(v: ir.Value, kv: ir.Value, a: ir.Value) -> ir.Value:
            d = arith.subf(v, kv)
            # mul then add, not fma: the schedule tiles reductions whose combiner is an add.
            return arith.addf(arith.mulf(d, d), a) if square else arith.addf(d, a)

        return generic([x, k], [fill(scalar(t, 0.0), ctx.empty(lead_t))], [ident, row, row],
                       red, body)[0]

    s1, s2 = sums(False), sums(True)
    mean = generic([k, s1], [ctx.empty(lead_t)], [lead_map] * 3, par_lead,
                   lambda kv, a, _: arith.addf(kv, arith.divf(a, n)))[0]

    def inv_std(a: ir.Value, b: ir.Value, _: ir.Value) -> ir.Value:
        m1 = arith.divf(a, n)
        var = arith.maximumf(arith.subf(arith.divf(b, n), arith.mulf(m1, m1)), scalar(t, 0.0))
        return arith.divf(scalar(t, 1.0), math.sqrt(arith.addf(var, scalar(t, eps))))

    inv = generic([s1, s2], [ctx.empty(lead_t)], [lead_map] * 3, par_lead, inv_std)[0]
    tail = dims_map(rank, [lead])
    # (x - mean) * inv exactly as before; then one fma for the affine part (a multiply and
    # an add less a vector: 0.967x against 1.01x torch's time, same-process A/B).
    return generic(
        [x, mean, inv, gamma, beta], [ctx.empty(x_t)], [ident, row, row, tail, tail, ident],
        [PARALLEL] * rank,
        lambda v, mv, iv, g, b, _: math.fma(arith.mulf(arith.subf(v, mv), iv), g, b))


def _static_positive(dim: object) -> bool:
    """Whether a dim is a static size of at least 1 (the shift reads element 0 of a row)."""
    return isinstance(dim, int) and dim >= 1
