"""mo.matmul: linalg.matmul when the rhs is 2-D (lhs rows collapsed), one linalg.matmul per
batch element for equal batch dims (in a loop the schedule looks into), a generic for bool."""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, linalg, scf, tensor

from max.compiler.lowering.builders import PARALLEL, REDUCTION, dims_map, fill, generic, scalar
from max.compiler.lowering.context import DYNAMIC, LoweringContext, element_type, kind_of
from max.compiler.lowering.precision import in_f32
from max.compiler.lowering.registry import lowering
from max.compiler.lowering.shape_ops import extract_slice, insert_slice, reshape_to
from max.dialects.mo.types import Dim

# The scf.for tag the CPU schedule looks into (cpu_schedule.SCHEDULED_LOOP).
TILE_LOOP = "mo.qtiles"


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


def _batched_matmul(ctx: LoweringContext, a: ir.Value, b: ir.Value, et: ir.Type) -> ir.Value:
    """[*batch, m, k] @ [*batch, k, n]: one linalg.matmul per batch element, in an scf.for the
    CPU schedule looks into (attention's q @ k^T and p @ v). A batched generic stayed plain
    loops (40x slower than PyTorch on [12, 128, 64] @ [12, 64, 128])."""
    a_t, b_t, out_t = ctx.operand_types[0], ctx.operand_types[1], ctx.result_types[0]
    m, k, n = a_t.dims[-2], a_t.dims[-1], b_t.dims[-1]
    count = ctx.index(1)
    static_count: int | None = 1
    for d in a_t.dims[:-2]:
        count = arith.muli(count, ctx.dim_value(d))
        static_count = static_count * d if static_count is not None and isinstance(d, int) \
            else None
    lead = static_count if static_count is not None else DYNAMIC

    def flat(x: ir.Value, rows: Dim, cols: Dim) -> ir.Value:
        sizes = [static_count if static_count is not None else count,
                 ctx.dim_value(rows), ctx.dim_value(cols)]
        t = ir.RankedTensorType.get([lead, _static(rows), _static(cols)], et)
        shape = tensor.from_elements(ir.RankedTensorType.get([3], ir.IndexType.get()),
                                     [s if isinstance(s, ir.Value) else ctx.index(s)
                                      for s in sizes])
        return tensor.reshape(t, x, shape)

    a3, b3 = flat(a, m, k), flat(b, k, n)
    mv, kv, nv = (d if isinstance(d, int) else ctx.dim_value(d) for d in (m, k, n))
    out3 = tensor.empty([static_count if static_count is not None else count, mv, nv], et)
    loop = scf.ForOp(ctx.index(0), count, ctx.index(1), [out3])
    loop.operation.attributes[TILE_LOOP] = ir.UnitAttr.get()  # scheduled inside
    with ir.InsertionPoint(loop.body):
        i = loop.induction_variable
        a_i = extract_slice(ir.RankedTensorType.get([_static(m), _static(k)], et), a3,
                            [i, 0, 0], [1, mv, kv], [1, 1, 1])
        b_i = extract_slice(ir.RankedTensorType.get([_static(k), _static(n)], et), b3,
                            [i, 0, 0], [1, kv, nv], [1, 1, 1])
        acc = fill(scalar(et, 0), tensor.empty([mv, nv], et))
        product = linalg.matmul(a_i, b_i, outs=[acc])
        scf.YieldOp([insert_slice(product, loop.inner_iter_args[0], [i, 0, 0], [1, mv, nv])])
    return reshape_to(ctx, loop.results[0], out_t)


def _static(d: Dim) -> int:
    return d if isinstance(d, int) else DYNAMIC
