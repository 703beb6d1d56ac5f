"""Reductions over one axis, kept with size 1: sum, mean, max, min, argmax, argmin."""

from __future__ import annotations

import functools
import math as pymath
from collections.abc import Callable, Sequence

from mlir import ir
from mlir.dialects import arith, tensor

from max.compiler.lowering.builders import (
    PARALLEL,
    REDUCTION,
    as_one_row,
    dims_map,
    fill,
    generic,
    identity_map,
    int_max,
    int_min,
    scalar,
)
from max.compiler.lowering.context import LoweringContext, element_type, kind_of
from max.compiler.lowering.elementwise import BINARY, F, I
from max.compiler.lowering.precision import FLOAT8, in_f32
from max.compiler.lowering.registry import lowering
from max.dialects.mo.types import Dim, MOTensorType

Combine = Callable[[ir.Value, ir.Value], ir.Value]


def identity_value(op: str, mo_element: str) -> float | int:
    """The starting accumulator of a reduction: 0 for sum, the type's lowest value for max."""
    kind = kind_of(mo_element)
    t = element_type(mo_element)
    if op == "sum":
        return 0
    low = op == "max"
    if kind == "float":
        return -pymath.inf if low else pymath.inf
    if kind == "bool":
        return 0 if low else 1
    signed = kind == "sint"
    return int_min(t, signed) if low else int_max(t, signed)


# A vector of at least this many elements (static) is reduced as rows first, which threads
# share: sum of 4M floats, two threads, one row 0.54 ms, 64 rows 0.29 (torch 0.30).
SPLIT_VECTOR = 1 << 16


def reduce_axes(ctx: LoweringContext, x: ir.Value, x_t: MOTensorType, axes: Sequence[int],
                combine: Combine, init: float | int, *, keepdims: bool) -> ir.Value:
    """Reduces ``x`` over ``axes`` with ``combine``; the result keeps them as size 1 or drops them."""
    rank = x_t.rank
    if keepdims:
        # Reduce to the dropped-axes shape, then reinsert the axes: the reduction's output map
        # stays a projected permutation, which the CPU schedule's tile_reduction needs.
        flat = reduce_axes(ctx, x, x_t, axes, combine, init, keepdims=False)
        return _keep_axes(ctx, flat, x_t, axes)
    if rank == 1 and list(axes) == [0]:
        # All of a vector: reduced as the one row of [1, n] (the CPU schedule's row
        # reductions are vector code; a reduction to rank 0 was a plain scalar loop: sum of
        # 4M floats, one thread, 2.47 ms against torch's 0.54), then back to rank 0. A long
        # one of static size as rows first, which threads share, then their partial results.
        n = x_t.dims[0]
        parts = next((r for r in (64, 32, 16, 8, 4, 2) if isinstance(n, int)
                      and n >= SPLIT_VECTOR and n % r == 0), None)
        if parts is not None:
            rows_t = x_t.with_dims((parts, n // parts))
            rows = tensor.ExpandShapeOp(ctx.tensor_type(rows_t), x, [[0, 1]], [],
                                        [parts, n // parts]).result
            partial = reduce_axes(ctx, rows, rows_t, [1], combine, init, keepdims=False)
            return reduce_axes(ctx, partial, x_t.with_dims((parts,)), [0], combine, init,
                               keepdims=False)
        row, row_t = as_row(x, x_t)
        one = reduce_axes(ctx, row, row_t, [1], combine, init, keepdims=False)
        return tensor.collapse_shape(ctx.tensor_type(x_t.with_dims(())), one, [])
    out_dims: list[Dim] = [d for i, d in enumerate(x_t.dims) if i not in axes]
    out_map = dims_map(rank, [i for i in range(rank) if i not in axes])
    out_t = x_t.with_dims(tuple(out_dims))
    et = element_type(x_t.element_type)
    acc = fill(scalar(et, init), ctx.empty(out_t))
    iterators = [REDUCTION if i in axes else PARALLEL for i in range(rank)]
    return generic([x], [acc], [identity_map(rank), out_map], iterators,
                   lambda v, a: combine(v, a))[0]


def as_row(x: ir.Value, x_t: MOTensorType) -> tuple[ir.Value, MOTensorType]:
    """A vector ``x`` ``[n]`` viewed as ``[1, n]`` (and that type)."""
    return as_one_row(x), x_t.with_dims((1, x_t.dims[0]))


def _keep_axes(ctx: LoweringContext, flat: ir.Value, x_t: MOTensorType,
               axes: Sequence[int]) -> ir.Value:
    """tensor.expand_shape of a reduced value back to rank ``x_t.rank``, reduced axes size 1."""
    out_dims: list[Dim] = [1 if i in axes else d for i, d in enumerate(x_t.dims)]
    kept = [i for i in range(x_t.rank) if i not in axes]
    groups: list[list[int]] = [[i] for i in kept]
    for a in sorted(axes):  # a size-1 axis joins the group of the kept dim before it
        before = [g for g, i in enumerate(kept) if i < a]
        if groups:
            groups[before[-1] if before else 0].append(a)
    for g in groups:
        g.sort()
    i64 = ir.IntegerType.get_signless(64)
    reassoc = ir.ArrayAttr.get([ir.ArrayAttr.get([ir.IntegerAttr.get(i64, i) for i in g])
                                for g in groups])
    dyn = ir.ShapedType.get_dynamic_size()
    static = [d if isinstance(d, int) else dyn for d in out_dims]
    values = [ctx.dim_value(d) for d in out_dims if not isinstance(d, int)]
    out_t = ctx.tensor_type(x_t.with_dims(tuple(out_dims)))
    return tensor.ExpandShapeOp(out_t, flat, reassoc, values, static).result


def count(ctx: LoweringContext, x_t: MOTensorType, axes: Sequence[int]) -> ir.Value:
    """The number of elements over ``axes`` as an index value."""
    n = ctx.index(1)
    for a in axes:
        n = arith.muli(n, ctx.dim_value(x_t.dims[a]))
    return n


def index_to(t: ir.Type, n: ir.Value) -> ir.Value:
    """An index value converted to a float or integer scalar type."""
    i64 = arith.index_cast(ir.IntegerType.get_signless(64), n)
    if isinstance(t, ir.IntegerType):
        w = ir.IntegerType(t).width
        return i64 if w == 64 else arith.trunci(t, i64)
    return arith.sitofp(t, i64)


def check_not_empty(ctx: LoweringContext, x_t: MOTensorType, axis: int) -> None:
    """max/min/argmax/argmin have no value over an empty axis (numpy raises).

    Static: a compile error (the builders raise before this). Symbolic: a runtime check, so
    that a size 0 at run time raises instead of returning the identity (-inf, index 0).
    """
    d = x_t.dims[axis]
    shape = "[" + ", ".join(str(s) for s in x_t.dims) + "]"
    if d == 0:
        raise ctx.error(f"axis {axis} of shape {shape} is empty: an empty {ctx.name} has no value")
    if not isinstance(d, int):
        ctx.add_check(arith.cmpi(I.eq, ctx.dim_value(d), ctx.index(0)),
                      f"{ctx.name}: axis {axis} of shape {shape} is empty ({d} = 0), and an "
                      f"empty {ctx.name.removeprefix('mo.')} has no value")


def _simple(op: str) -> None:
    table = {"sum": "add", "mean": "add", "max": "max", "min": "min"}

    def rule(ctx: LoweringContext) -> list[ir.Value]:
        x_t = ctx.operand_types[0]
        axis = ctx.axis(x_t.rank)
        if op in ("max", "min"):
            check_not_empty(ctx, x_t, axis)
        kind = kind_of(x_t.element_type)
        combine = BINARY[table[op]][kind]
        init = identity_value("sum" if op == "mean" else op, x_t.element_type)
        out = reduce_axes(ctx, ctx.operands[0], x_t, [axis], combine, init, keepdims=True)
        if op != "mean":
            return [out]
        n = count(ctx, x_t, [axis])
        out_t = ctx.result_types[0]
        et = element_type(x_t.element_type)
        nv = index_to(et, n)
        div = BINARY["div"][kind]
        return generic([out], [ctx.empty(out_t)], [identity_map(out_t.rank)] * 2,
                       [PARALLEL] * out_t.rank, lambda s, _: div(s, nv))

    # Sums of 16-bit floats accumulate in f32; max and min are exact in any precision (but
    # float8 has no arithmetic of its own).
    lowering(f"mo.reduce_{op}")(in_f32(rule) if op in ("sum", "mean") else in_f32(rule, FLOAT8))


for _op in ("sum", "mean", "max", "min"):
    _simple(_op)


def _arg(op: str) -> None:
    @lowering(f"mo.{op}")
    @functools.partial(in_f32, types=FLOAT8)
    def rule(ctx: LoweringContext) -> list[ir.Value]:
        """Two reductions the CPU schedule vectorizes (one reduction with two results, value
        and index, it cannot): the extreme value ``m``, then the first index whose element
        matches it, ``min(i if match(x[i], m) else BIG)``. A row holding a NaN has ``m`` NaN
        (maximumf/minimumf propagate it), and its first NaN matches: numpy's answer."""
        x_t, out_t = ctx.operand_types[0], ctx.result_types[0]
        axis = ctx.axis(x_t.rank)
        check_not_empty(ctx, x_t, axis)
        kind = kind_of(x_t.element_type)
        out_kind = kind_of(out_t.element_type)
        if out_kind not in ("sint", "uint"):
            raise ctx.error("the result must have an integer dtype")
        it = element_type(out_t.element_type)
        x = ctx.operands[0]
        vector_input = x_t.rank == 1
        if vector_input:  # its one row of [1, n] (see reduce_axes); result [1]
            x, x_t = as_row(x, x_t)
            out_t, axis = out_t.with_dims((1, 1)), 1
        extreme = "max" if op == "argmax" else "min"
        m = reduce_axes(ctx, x, x_t, [axis], BINARY[extreme][kind],
                        identity_value(extreme, x_t.element_type), keepdims=False)
        rank = x_t.rank
        kept = [i for i in range(rank) if i != axis]
        row_map = dims_map(rank, kept)
        first = BINARY["min"][out_kind]

        # The positions come in as a tensor, not as linalg.index in the reduction: the
        # schedule tiles this reduction into vector-wide partial ones, and the index inside a
        # partial reduction's body is its position inside the tile (MLIR 22). A
        # tensor.generate, not a linalg op, so that fusion does not put the index back.
        iota = _positions(ctx, it, x_t.dims[axis])
        never = scalar(it, _never(it, out_kind))

        def body(v: ir.Value, mv: ir.Value, i: ir.Value, acc: ir.Value) -> ir.Value:
            if kind == "float":
                match = arith.ori(arith.cmpf(F.OEQ, v, mv), arith.cmpf(F.UNO, v, v))
            else:
                match = arith.cmpi(I.eq, v, mv)
            return first(arith.select(match, i, never), acc)

        flat_t = out_t.with_dims(tuple(d for i, d in enumerate(out_t.dims) if i != axis))
        idx0 = fill(never, ctx.empty(flat_t))
        idx = generic([x, m, iota], [idx0],
                      [identity_map(rank), row_map, dims_map(rank, [axis]), row_map],
                      [REDUCTION if i == axis else PARALLEL for i in range(rank)], body)[0]
        if vector_input:
            return [idx]  # [1]: the row's
        return [_keep_axes(ctx, idx, out_t.with_dims(x_t.dims), [axis])]


def _positions(ctx: LoweringContext, t: ir.Type, n: Dim) -> ir.Value:
    """``[0, 1, .., n - 1]`` as a 1-D tensor of ``t``."""
    dyn = ir.ShapedType.get_dynamic_size()
    static = n if isinstance(n, int) else dyn
    extents = [] if isinstance(n, int) else [ctx.dim_value(n)]
    gen = tensor.GenerateOp(ir.RankedTensorType.get([static], t), extents)
    block = gen.regions[0].blocks.append(ir.IndexType.get())
    with ir.InsertionPoint(block):
        tensor.YieldOp(index_to(t, block.arguments[0]))
    return gen.result


def _never(t: ir.Type, kind: str) -> int:
    """An index no element has: the largest value of the result type."""
    return int_max(t, kind == "sint")


for _op in ("argmax", "argmin"):
    _arg(_op)

__all__ = ["check_not_empty", "count", "identity_value", "index_to", "reduce_axes"]
