"""mo.gather = numpy.take(x, indices, axis): negative indices wrap; out of range is reported.

An index outside [-n, n) is clamped for the read (nothing out of bounds is ever read) and sets
the op's runtime check, which the caller turns into an error.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, scf, tensor

from max.compiler.lowering.builders import (
    PARALLEL,
    REDUCTION,
    as_one_row,
    dims_map,
    fill,
    generic,
    index_constant,
    linalg_index,
    scalar,
)
from max.compiler.lowering.context import LoweringContext, element_type, kind_of
from max.compiler.lowering.registry import lowering

I = arith.CmpIPredicate


def _normalize(ctx: LoweringContext, raw: ir.Value, n: ir.Value, unsigned: bool
               ) -> tuple[ir.Value, ir.Value]:
    """(wrapped index, out-of-range flag) of one raw index against axis size n."""
    index = ir.IndexType.get()
    i = arith.index_castui(index, raw) if unsigned else arith.index_cast(index, raw)
    zero = arith.constant(index, 0)
    if not unsigned:
        i = arith.select(arith.cmpi(I.slt, i, zero), arith.addi(i, n), i)
    oob = arith.ori(arith.cmpi(I.slt, i, zero), arith.cmpi(I.sge, i, n))
    return i, oob


def where(ctx: LoweringContext) -> str:
    """The suffix ' (at LOCATION)' of a check message, or '' where the location is unknown."""
    at = str(ctx.op.location)
    return "" if at == "loc(unknown)" else f" (at {at})"


def unsigned_indices(ctx: LoweringContext, mo_element: str) -> bool:
    """Whether indices of element type ``mo_element`` are unsigned; non-integers are refused."""
    kind = kind_of(mo_element)
    if kind not in ("sint", "uint"):
        raise ctx.error(f"indices must be integers, not {mo_element}")
    return kind == "uint"


def any_oob(ctx: LoweringContext, indices: ir.Value, sizes: list[ir.Value],
            unsigned: bool) -> ir.Value:
    """A rank-0 i8 tensor: 1 when some index is out of range. With one size every index is
    checked against it; with several, an index at position j of the last dim against sizes[j]."""
    rank = ir.RankedTensorType(indices.type).rank
    i8 = ir.IntegerType.get_signless(8)

    def check(raw: ir.Value, acc: ir.Value) -> ir.Value:
        n = sizes[0]
        if len(sizes) > 1:
            last = linalg_index(rank - 1)
            for j in range(1, len(sizes)):
                n = arith.select(arith.cmpi(I.eq, last, index_constant(j)), sizes[j], n)
        _, oob = _normalize(ctx, raw, n, unsigned)
        return arith.ori(acc, arith.extui(i8, oob))

    if len(sizes) == 1 and rank >= 1:
        # All indices as one row (an embedding's check): vector code, not a plain loop.
        d0 = ir.AffineDimExpr.get(0)
        one = generic([as_one_row(indices)], [fill(scalar(i8, 0), tensor.empty([1], i8))],
                      [ir.AffineMap.get_identity(2), ir.AffineMap.get(2, 0, [d0])],
                      [PARALLEL, REDUCTION], check)[0]
        return tensor.collapse_shape(ir.RankedTensorType.get([], i8), one, [])
    return generic([indices], [fill(scalar(i8, 0), tensor.empty([], i8))],
                   [ir.AffineMap.get_identity(rank), ir.AffineMap.get(rank, 0, [])],
                   [REDUCTION] * rank, check)[0]


@lowering("mo.gather")
def _gather(ctx: LoweringContext) -> list[ir.Value]:
    x, indices = ctx.operands
    x_t, i_t = ctx.operand_types
    out_t = ctx.result_types[0]
    axis = ctx.axis(x_t.rank)
    unsigned = unsigned_indices(ctx, i_t.element_type)
    if out_t.rank != x_t.rank - 1 + i_t.rank:
        raise ctx.error(f"result rank {out_t.rank} != {x_t.rank} - 1 + {i_t.rank}")
    n = ctx.dim_value(x_t.dims[axis])
    rank = out_t.rank
    k = i_t.rank
    idx_map = dims_map(rank, list(range(axis, axis + k)))
    index = ir.IndexType.get()
    maybe_empty = not (isinstance(x_t.dims[axis], int) and x_t.dims[axis] > 0)
    et = element_type(out_t.element_type)

    def body(raw: ir.Value, _: ir.Value) -> ir.Value:
        i, _oob = _normalize(ctx, raw, n, unsigned)
        top = arith.subi(n, arith.constant(index, 1))
        clamped = arith.maxsi(arith.minsi(i, top), arith.constant(index, 0))
        coords = ([linalg_index(d) for d in range(axis)] + [clamped]
                  + [linalg_index(d) for d in range(axis + k, rank)])
        if not maybe_empty:
            return tensor.extract(x, coords)
        # An empty axis has nothing to read: yield 0 (the check reports the failure).
        nonempty = arith.cmpi(I.sgt, n, arith.constant(index, 0))
        if_op = scf.IfOp(nonempty, [et], has_else=True)
        with ir.InsertionPoint(if_op.then_block):
            scf.YieldOp([tensor.extract(x, coords)])
        with ir.InsertionPoint(if_op.else_block):
            scf.YieldOp([scalar(et, 0)])
        return if_op.results[0]

    out = generic([indices], [ctx.empty(out_t)], [idx_map, ir.AffineMap.get_identity(rank)],
                  [PARALLEL] * rank, body)[0]

    ctx.add_check(any_oob(ctx, indices, [n], unsigned),
                  f"mo.gather: index out of range for axis {axis} of size "
                  f"{x_t.dims[axis]}{where(ctx)}")
    return [out]
