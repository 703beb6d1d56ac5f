"""mo.matmul: linalg.matmul for rank 2, a batched contraction generic otherwise."""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, linalg

from max.compiler.lowering.builders import PARALLEL, REDUCTION, dims_map, fill, generic, scalar
from max.compiler.lowering.context import LoweringContext, element_type, kind_of
from max.compiler.lowering.registry import lowering


@lowering("mo.matmul")
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
    acc = fill(scalar(et, 0), ctx.empty(out_t))
    if a_t.rank == 2:
        return [linalg.matmul(a, b, outs=[acc])]
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
