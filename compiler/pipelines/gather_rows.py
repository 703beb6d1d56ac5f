"""Gathers of whole rows (an embedding lookup): scheduled as elementwise ops whose read of the
table is one contiguous vector per tile.

``mo.gather`` lowers to a generic that reads ``tensor.extract %table[%i, %j]``, ``%i`` from
the index operand and ``%j`` the innermost loop (see ``lowering/gather.py``). Tiled like an
elementwise op ([1, ..., 1, VEC]), each tile reads VEC consecutive elements of one table row;
MLIR's vectorizer (``vectorize_nd_extract``) makes that one ``transfer_read``, but only when
the row index is defined outside the op: read from a block argument it is taken as varying,
and the tile becomes a ``vector.gather`` of VEC addresses. So the index operand's element is
read before each tile (it has one element there: its map does not use the innermost loop).
On memrefs (stage 2) the extract is a ``memref.load``, which the vectorizer refuses: these
ops are vectorized on tensors, and only where every tile is static (the row length is).
MiniLM's embeddings (8 x 128 rows of 384 from a 30522-row table, plus the position rows)
were 2.3 ms a call as plain loops.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, tensor

from max.compiler.passes.ir_util import defined_within, defining_op, walk_ops


def _maps(op: ir.Operation) -> list[ir.AffineMap]:
    return [ir.AffineMapAttr(a).value for a in ir.ArrayAttr(op.attributes["indexing_maps"])]


def _uses_dim(m: ir.AffineMap, d: int) -> bool:
    return any(isinstance(e, ir.AffineDimExpr) and ir.AffineDimExpr(e).position == d
               for e in m.results)


def _innermost_index(v: ir.Value, last: int) -> bool:
    d = defining_op(v)
    return d is not None and d.name == "linalg.index" and \
        ir.IntegerAttr(d.attributes["dim"]).value == last


def _uniform(v: ir.Value, op: ir.Operation, varying_args: set[int], last: int) -> bool:
    """Whether ``v`` (in ``op``'s body) is the same for every iteration of the innermost
    loop: computed from constants, values from outside, outer loops' indices and the
    elements of inputs that do not walk the innermost loop."""
    body = op.regions[0].blocks[0]
    stack, seen = [v], set()
    while stack:
        x = stack.pop()
        if x in seen:
            continue
        seen.add(x)
        owner = x.owner
        if isinstance(owner, ir.Block) and owner == body:
            if ir.BlockArgument(x).arg_number in varying_args:
                return False
            continue
        if not defined_within(x, op):
            continue  # defined outside the op (a constant, an enclosing loop's index)
        if isinstance(owner, ir.Block):
            return False  # an argument of a region nested in the body
        inner = owner.operation
        if inner.name == "linalg.index":
            if ir.IntegerAttr(inner.attributes["dim"]).value == last:
                return False
            continue
        if inner.name == "tensor.extract" or not inner.name.startswith("arith."):
            return False
        stack.extend(inner.operands)
    return True


def contiguous_gather(op: ir.Operation) -> bool:
    """Whether the all-parallel generic ``op`` reads tables only by ``tensor.extract`` of a
    row index uniform along the innermost loop and that loop's index last: each tile's read
    is contiguous. Its body is otherwise the elementwise schedule's (``body_ok``: checked by
    the caller on the other ops), and the innermost size is static."""
    op = op.operation
    if op.name != "linalg.generic":
        return False
    out_t = ir.RankedTensorType(op.results[0].type)
    if out_t.rank < 1 or out_t.shape[-1] == ir.ShapedType.get_dynamic_size():
        return False
    last = out_t.rank - 1
    n_in = len(op.operands) - len(op.results)
    maps = _maps(op)
    varying = {i for i in range(n_in) if _uses_dim(maps[i], last)}
    varying |= set(range(n_in, n_in + len(op.results)))  # the output's element
    extracts = [inner for inner in walk_ops(op) if inner.name == "tensor.extract"]
    if not extracts:
        return False
    for ex in extracts:
        source, *idx = ex.operands
        if defined_within(source, op):
            return False  # a table computed in the body
        if not idx or not _innermost_index(idx[-1], last):
            return False
        if not all(_uniform(i, op, varying, last) for i in idx[:-1]):
            return False
    return True


def hoist_unit_operands(module: ir.Module, tiled: str) -> int:
    """In every tile (``tiled``) of a gather, each input of one element is read before the
    op, and the body uses that value: a row index then comes from outside the op (see the
    module doc). Returns how many inputs."""
    count = 0
    for op in walk_ops(module.operation):
        if op.name != "linalg.generic" or tiled not in op.attributes:
            continue
        if not any(inner.name == "tensor.extract" for inner in walk_ops(op)):
            continue
        body = op.regions[0].blocks[0]
        n_in = len(op.operands) - len(op.results)
        for i in range(n_in):
            operand = op.operands[i]
            t = operand.type
            if not isinstance(t, ir.RankedTensorType):
                continue
            t = ir.RankedTensorType(t)
            arg = body.arguments[i]
            if not t.has_static_shape or any(d != 1 for d in t.shape) or not list(arg.uses):
                continue
            with ir.InsertionPoint(op), op.location:
                zero = arith.constant(ir.IndexType.get(), 0)
                value = tensor.extract(operand, [zero] * t.rank)
            arg.replace_all_uses_with(value)
            count += 1
    return count


__all__ = ["contiguous_gather", "hoist_unit_operands"]
