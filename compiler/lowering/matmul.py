"""mo.matmul: linalg.matmul when the rhs is 2-D (lhs rows collapsed), linalg.batch_matmul for
equal batch dims (collapsed into one), a generic for bool."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mlir import ir
from mlir.dialects import arith, linalg, tensor

from max.compiler.lowering.builders import PARALLEL, REDUCTION, dims_map, fill, generic, scalar
from max.compiler.lowering.context import DYNAMIC, LoweringContext, element_type, kind_of
from max.compiler.lowering.precision import in_f32
from max.compiler.lowering.registry import lowering
from max.compiler.lowering.shape_ops import reshape_to
from max.dialects.mo.types import Dim


@lowering("mo.matmul")
@in_f32
def _matmul(ctx: LoweringContext) -> list[ir.Value]:
    a, b = ctx.operands
    a_t, b_t = ctx.operand_types
    out_t = ctx.result_types[0]
    if a_t.element_type != b_t.element_type:
        raise ctx.error(f"operand dtypes differ: {a_t.element_type} vs {b_t.element_type}")
    if a_t.rank < 2 or b_t.rank < 2:
        raise ctx.error("operands must have rank >= 2")
    if b_t.rank != 2 and b_t.rank != a_t.rank:
        raise ctx.error(f"rhs rank {b_t.rank} must be 2 or equal lhs rank {a_t.rank}")
    if out_t.rank != a_t.rank:
        raise ctx.error(f"result rank {out_t.rank} must equal lhs rank {a_t.rank}")
    kind = kind_of(a_t.element_type)
    et = element_type(out_t.element_type)
    if kind != "bool" and b_t.rank == 2:
        # [..., m, k] @ [k, n] is one 2-D matmul over the collapsed rows: the named op is
        # what the CPU schedule tiles and vectorizes. (bool stays a generic: and/or, no wrap.)
        return [rows_matmul(ctx, a, b, et)]
    # (A static 0 anywhere stays the generic: slices of static 0 dims at a loop's offset do
    # not verify; the sizes known only at run time may be 0.)
    if kind != "bool" and b_t.rank == a_t.rank and 0 not in (*a_t.dims, *b_t.dims):
        return [_batched_matmul(ctx, a, b, et)]
    acc = fill(scalar(et, 0), ctx.empty(out_t))
    # Loops: batch..., m, n, k.
    nb = a_t.rank - 2
    m, n, k = nb, nb + 1, nb + 2
    batch = list(range(nb))
    rank = nb + 3
    maps = [
        dims_map(rank, batch + [m, k]),
        dims_map(rank, ([] if b_t.rank == 2 else batch) + [k, n]),
        dims_map(rank, batch + [m, n]),
    ]
    mul, add = ((arith.mulf, arith.addf) if kind == "float" else
                (arith.andi, arith.ori) if kind == "bool" else (arith.muli, arith.addi))
    return generic([a, b], [acc], maps, [PARALLEL] * (nb + 2) + [REDUCTION],
                   lambda x, y, c: add(c, mul(x, y)))


def rows_matmul(ctx: LoweringContext, a: ir.Value, b: ir.Value, et: ir.Type) -> ir.Value:
    """linalg.matmul of ``a`` (rank >= 2, leading dims collapsed into the rows) by a 2-D ``b``."""
    a_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    if a_t.rank == 2:
        return linalg.matmul(a, b, outs=[fill(scalar(et, 0), ctx.empty(out_t))])
    rows = _count(ctx, a_t.dims[:-1])
    a2 = view(ctx, a, [rows, _size(ctx, a_t.dims[-1])])
    n = ir.RankedTensorType(b.type).shape[1]
    acc = fill(scalar(et, 0), tensor.empty(
        [rows, n if n != DYNAMIC else tensor.dim(b, ctx.index(1))], et))
    product = linalg.matmul(a2, b, outs=[acc])
    return reshape_to(ctx, product, out_t)


def _batched_matmul(ctx: LoweringContext, a: ir.Value, b: ir.Value, et: ir.Type) -> ir.Value:
    """[*batch, m, k] @ [*batch, k, n] (attention's q @ k^T and p @ v): one
    ``linalg.batch_matmul`` over the collapsed batch dims, which the CPU schedule splits over
    threads by batch and tiles like a matmul. (A batched generic stayed plain loops, 40x
    slower than PyTorch on [12, 128, 64] @ [12, 64, 128]; one matmul per batch element in a
    loop could not be split over threads.)"""
    a_t, b_t, out_t = ctx.operand_types[0], ctx.operand_types[1], ctx.result_types[0]
    if a_t.rank == 3:  # one batch dim already: no views (a reshape of the result to its own
        # shape, symbolic, is a copy into the output where nothing can fold it)
        return linalg.batch_matmul(a, b, outs=[fill(scalar(et, 0), ctx.empty(out_t))])
    batch = _count(ctx, a_t.dims[:-2])
    m, k, n = (_size(ctx, d) for d in (a_t.dims[-2], a_t.dims[-1], b_t.dims[-1]))
    a3, b3 = view(ctx, a, [batch, m, k]), view(ctx, b, [batch, k, n])
    acc = fill(scalar(et, 0), tensor.empty([batch, m, n], et))
    product = linalg.batch_matmul(a3, b3, outs=[acc])
    return reshape_to(ctx, product, out_t)


Mixed = int | ir.Value


def _size(ctx: LoweringContext, d: Dim | Mixed) -> Mixed:
    """A static size as an int, a symbolic one as its index value."""
    return d if isinstance(d, int | ir.Value) else ctx.dim_value(d)


def _count(ctx: LoweringContext, dims: Sequence[Dim]) -> Mixed:
    """The product of ``dims``: an int where all are static."""
    if all(isinstance(d, int) for d in dims):
        return math.prod(dims)  # type: ignore[arg-type]
    count = ctx.index(1)
    for d in dims:
        count = arith.muli(count, ctx.dim_value(d))
    return count


def _index_of(ctx: LoweringContext, size: Mixed) -> ir.Value:
    return ctx.index(size) if isinstance(size, int) else size


def _tensor_type(sizes: Sequence[Mixed], et: ir.Type) -> ir.RankedTensorType:
    return ir.RankedTensorType.get([s if isinstance(s, int) else DYNAMIC for s in sizes], et)


def view(ctx: LoweringContext, x: ir.Value, sizes: Sequence[Mixed]) -> ir.Value:
    """``x`` (contiguous) viewed with ``sizes`` by ``tensor.reshape``.

    Not ``tensor.collapse_shape``: a static one is folded back into the matmul by the reshape
    propagation of ``linalg-fuse-elementwise-ops``, which makes it a generic of more loops
    that the schedule does not recognize (plain loops: 100x slower on [1, 128, 384]).
    """
    shape = tensor.from_elements(ir.RankedTensorType.get([len(sizes)], ir.IndexType.get()),
                                 [_index_of(ctx, s) for s in sizes])
    return tensor.reshape(_tensor_type(sizes, ir.RankedTensorType(x.type).element_type), x,
                          shape)
