"""mo.matmul: linalg.matmul when the rhs is 2-D (lhs rows collapsed), a batched generic otherwise."""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, linalg, tensor

from max.compiler.lowering.builders import PARALLEL, REDUCTION, dims_map, fill, generic, scalar
from max.compiler.lowering.context import DYNAMIC, LoweringContext, element_type, kind_of
from max.compiler.lowering.precision import in_f32
from max.compiler.lowering.registry import lowering
from max.compiler.lowering.shape_ops import reshape_to


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
        return [_rows_matmul(ctx, a, b, et)]
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


def _rows_matmul(ctx: LoweringContext, a: ir.Value, b: ir.Value, et: ir.Type) -> ir.Value:
    """linalg.matmul of ``a`` (rank >= 2, leading dims collapsed into the rows) by a 2-D ``b``."""
    a_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    if a_t.rank == 2:
        return linalg.matmul(a, b, outs=[fill(scalar(et, 0), ctx.empty(out_t))])
    lead = list(range(a_t.rank - 1))
    a_shape = ir.RankedTensorType(a.type).shape
    rows_static = all(d != DYNAMIC for d in a_shape[:-1])
    rows = 1
    for d in a_shape[:-1]:
        rows *= d
    rows_t = ir.RankedTensorType.get([rows if rows_static else DYNAMIC, a_shape[-1]],
                                     ir.RankedTensorType(a.type).element_type)
    if rows_static:
        # A static collapse_shape would be folded back into the matmul by the reshape
        # propagation of linalg-fuse-elementwise-ops, turning it into a 4-loop generic that
        # the schedule does not recognize (plain loops: 100x slower on [1, 128, 384]).
        # tensor.reshape is not propagated.
        shape = tensor.from_elements(ir.RankedTensorType.get([2], ir.IndexType.get()),
                                     [ctx.index(d) for d in rows_t.shape])
        a2 = tensor.reshape(rows_t, a, shape)
    else:
        a2 = tensor.collapse_shape(rows_t, a, [lead, [a_t.rank - 1]])
    n = ir.RankedTensorType(b.type).shape[1]
    sizes: list[int | ir.Value] = [rows_t.shape[0] if rows_static else tensor.dim(a2, ctx.index(0)),
                                   n if n != DYNAMIC else tensor.dim(b, ctx.index(1))]
    acc = fill(scalar(et, 0), tensor.empty(sizes, et))
    product = linalg.matmul(a2, b, outs=[acc])
    return reshape_to(ctx, product, out_t)
