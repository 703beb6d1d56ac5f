"""Small IR builders shared by the rules: linalg.generic, broadcast maps, scalar constants."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from mlir import ir
from mlir.dialects import arith, linalg, tensor

from max.dialects.mo.types import MOTensorType

PARALLEL = linalg.IteratorType.parallel
REDUCTION = linalg.IteratorType.reduction


def identity_map(rank: int) -> ir.AffineMap:
    """(d0..dn) -> (d0..dn)."""
    return ir.AffineMap.get_identity(rank)


def broadcast_map(operand: MOTensorType, result: MOTensorType) -> ir.AffineMap:
    """numpy broadcasting as an indexing map: trailing-aligned, static size-1 dims read index 0."""
    rank = result.rank
    offset = rank - operand.rank
    exprs = []
    for i, d in enumerate(operand.dims):
        j = i + offset
        if d == 1 and result.dims[j] != 1:
            exprs.append(ir.AffineConstantExpr.get(0))
        else:
            exprs.append(ir.AffineDimExpr.get(j))
    return ir.AffineMap.get(rank, 0, exprs)


def dims_map(rank: int, dims: Sequence[int | None]) -> ir.AffineMap:
    """A map onto the loop dims ``dims``; None stands for the constant 0 (a kept size-1 axis)."""
    exprs = [ir.AffineConstantExpr.get(0) if d is None else ir.AffineDimExpr.get(d) for d in dims]
    return ir.AffineMap.get(rank, 0, exprs)


def generic(inputs: Sequence[ir.Value], outputs: Sequence[ir.Value],
            maps: Sequence[ir.AffineMap], iterators: Sequence[linalg.IteratorType],
            body: Callable[..., Sequence[ir.Value] | ir.Value]) -> list[ir.Value]:
    """A linalg.generic whose body is built by ``body(*block_args)`` returning the yields."""
    op = linalg.GenericOp_(
        list(inputs), list(outputs),
        ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps]),
        list(iterators),
    )
    block = op.regions[0].blocks[0]
    with ir.InsertionPoint(block):
        out = body(*block.arguments)
        linalg.YieldOp(list(out) if isinstance(out, list | tuple) else [out])
    return list(op.results)


def scalar(t: ir.Type, value: float | int | bool) -> ir.Value:
    """An arith.constant of element type ``t``."""
    if isinstance(t, ir.IntegerType):
        width = ir.IntegerType(t).width
        v = int(value)
        if width == 1:
            v = 1 if v else 0
        elif v >= 1 << (width - 1):
            v -= 1 << width  # unsigned bit patterns are stored as signed
        return arith.constant(t, ir.IntegerAttr.get(t, v))
    return arith.constant(t, ir.FloatAttr.get(t, float(value)))


def i8_flag(flag: ir.Value) -> ir.Value:
    """A check flag (i1/i8 scalar or rank-0 i8 tensor) as an i8 scalar."""
    i8 = ir.IntegerType.get_signless(8)
    if isinstance(flag.type, ir.RankedTensorType):
        flag = tensor.extract(flag, [])
    return flag if flag.type == i8 else arith.extui(i8, flag)


def flags_tensor(checks: Sequence[tuple[ir.Value, str]]) -> ir.Value:
    """The flags of runtime checks ((flag, message) pairs) as one ``tensor<Nxi8>``, in order."""
    flags = [i8_flag(flag) for flag, _ in checks]
    return tensor.from_elements(
        ir.RankedTensorType.get([len(flags)], ir.IntegerType.get_signless(8)), flags)


def index_constant(v: int) -> ir.Value:
    """An arith.constant of type index (``scalar`` makes element constants, not indices)."""
    return arith.constant(ir.IndexType.get(), v)


def fill(value: ir.Value, dest: ir.Value) -> ir.Value:
    """linalg.fill of ``dest`` with the scalar ``value``."""
    return linalg.fill(value, outs=[dest])


def int_min(t: ir.Type, signed: bool) -> int:
    """The smallest value of an integer type (as a Python int)."""
    w = ir.IntegerType(t).width
    return -(1 << (w - 1)) if signed and w > 1 else 0


def int_max(t: ir.Type, signed: bool) -> int:
    """The largest value of an integer type (as a Python int, unsigned as its bit pattern)."""
    w = ir.IntegerType(t).width
    return (1 << (w - 1)) - 1 if signed and w > 1 else (1 << w) - 1


def transposed(x: ir.Value, perm: Sequence[int], out: ir.Value | None = None) -> ir.Value:
    """``x`` permuted by the named ``linalg.transpose`` (dim ``i`` of the result is dim
    ``perm[i]`` of ``x``) into ``out``, by default a new tensor of ``x``'s static shape
    permuted. Named, elementwise fusion leaves it alone, and the layout schedule and
    load-time layouts (``arg_layouts``) find it."""
    if out is None:
        t = ir.RankedTensorType(x.type)
        out = tensor.empty([t.shape[p] for p in perm], t.element_type)
    op = linalg.transpose(x, outs=[out], permutation=list(perm))
    return op if isinstance(op, ir.Value) else op.results[0]


def linalg_index(dim: int) -> ir.Value:
    """linalg.index: the current iteration index of loop ``dim`` inside a generic body."""
    return linalg.IndexOp(dim).result


def reassociation(groups: Sequence[Sequence[int]]) -> ir.ArrayAttr:
    """The reassociation attribute of an expand_shape / collapse_shape (i64 groups)."""
    i64 = ir.IntegerType.get_signless(64)
    return ir.ArrayAttr.get([ir.ArrayAttr.get([ir.IntegerAttr.get(i64, d) for d in g])
                             for g in groups])


def as_one_row(x: ir.Value) -> ir.Value:
    """All elements of ``x`` (any rank, contiguous) viewed as the one row of ``[1, count]``:
    the CPU schedule's row reductions are vector code, where a reduction to rank 0 is plain
    loops."""
    t = ir.RankedTensorType(x.type)
    dyn = ir.ShapedType.get_dynamic_size()
    if t.rank != 1:
        count = dyn if dyn in t.shape else int(np.prod(t.shape, dtype=np.int64))
        x = tensor.collapse_shape(ir.RankedTensorType.get([count], t.element_type), x,
                                  [list(range(t.rank))])
    n = ir.RankedTensorType(x.type).shape[0]
    sizes = [] if n != dyn else [tensor.dim(x, index_constant(0))]
    return tensor.expand_shape(ir.RankedTensorType.get([1, n], t.element_type), x, [[0, 1]],
                               sizes, [1, n])
