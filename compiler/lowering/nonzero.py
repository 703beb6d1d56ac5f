"""``mo.nonzero``: the indices of the non-zero elements, a size that only the data determines.

Two row-major scalar passes over x: the first counts, the second writes one row of indices
per non-zero element. Where the count dim is a new symbol the count binds it (the result is
allocated with exactly that many rows, and every later use of the symbol reads the count);
where it is already bound (or static), the count is checked against it and no row past it is
written.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, tensor

from max.compiler.lowering.builders import fill, index_constant, scalar
from max.compiler.lowering.context import LoweringContext, kind_of
from max.compiler.lowering.float8 import decode, is_float8
from max.compiler.lowering.gather import where
from max.compiler.lowering.scalar_loops import if_, nest
from max.compiler.lowering.registry import lowering

I = arith.CmpIPredicate
F = arith.CmpFPredicate
_c = index_constant


def _is_nonzero(v: ir.Value, mo_element: str) -> ir.Value:
    """i1: ``v != 0`` as numpy tests it (NaN is non-zero, -0.0 is zero)."""
    if is_float8(mo_element):
        v = decode(v, mo_element)
    if kind_of(mo_element) == "float":
        return arith.cmpf(F.UNE, v, scalar(v.type, 0.0))
    return arith.cmpi(I.ne, v, scalar(v.type, 0))


@lowering("mo.nonzero")
def _nonzero(ctx: LoweringContext) -> list[ir.Value]:
    (x,) = ctx.operands
    (x_t,) = ctx.operand_types
    out_t = ctx.result_types[0]
    sizes = [ctx.dim_value(d) for d in x_t.dims]
    i64 = ir.IntegerType.get_signless(64)

    def count(ivs: list[ir.Value], acc: list[ir.Value]) -> list[ir.Value]:
        nz = _is_nonzero(tensor.extract(x, ivs), x_t.element_type)
        return [arith.addi(acc[0], arith.select(nz, _c(1), _c(0)))]

    (total,) = nest(sizes, [_c(0)], count)
    declared_dim = out_t.dims[0]
    exact = ctx.fn.is_new_symbol(declared_dim)
    declared: ir.Value | None = None
    if exact:
        ctx.fn.define(str(declared_dim), total)  # at most x's element count
        out = ctx.empty(out_t)
    else:
        declared = ctx.dim_value(declared_dim)
        ctx.add_check(arith.cmpi(I.ne, total, declared),
                      f"mo.nonzero: the number of non-zero elements is not the declared count "
                      f"{declared_dim}{where(ctx)}")
        out = fill(scalar(i64, 0), ctx.empty(out_t))  # rows past the count stay 0

    def write(ivs: list[ir.Value], args: list[ir.Value]) -> list[ir.Value]:
        out, row = args
        nz = _is_nonzero(tensor.extract(x, ivs), x_t.element_type)
        if declared is not None:  # never a row past the declared count
            nz = arith.andi(nz, arith.cmpi(I.ult, row, declared))

        def store() -> list[ir.Value]:
            t = out
            for j, iv in enumerate(ivs):
                t = tensor.insert(arith.index_cast(i64, iv), t, [row, _c(j)])
            return [t, arith.addi(row, _c(1))]

        return if_(nz, store, [out, row])

    out, _ = nest(sizes, [out, _c(0)], write)
    return [out]
