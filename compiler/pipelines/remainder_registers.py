"""A row reduction's partial vector kept in registers through a masked remainder loop.

Where the row's length is symbolic, the remainder of a reduction's tiles is a peeled loop (at
most one iteration, of a run-time size below the tile) that folds the row's last elements into
the partial vector with masked transfers of a view of its buffer:

    vector.store %partial, %buf                        : vector<64xf32>
    scf.for %i = %full to %n step %c64 {
      %view = memref.subview %buf[0, 0] [1, %rest] [1, 1]
      %mask = vector.create_mask %c1, %rest          : vector<1x64xi1>
      %old = vector.transfer_read %view[..], %pad, %mask
      vector.transfer_write (%old + %x), %view[..], %mask
    }
    %all = vector.load %buf                            : vector<64xf32>

The load after masked stores cannot take its value from the store queue: it waits for the
stores to reach the cache, every row. ``perf`` on a softmax over symbolic rows of 12 (batch
8, 12 heads) found its time on those loads; it took 4x the same graph with static dims. Here
such a buffer becomes a value the loop carries (``iter_args``): a masked read of it is a
``select`` of its lanes and the padding, a masked write a ``select`` of the new lanes and the
old (the same lanes as the memory version), and the load after the loop is the loop's
result. :mod:`row_registers` does the same for static remainders, whose accesses sit at
constant positions in one block.
"""

from __future__ import annotations

import numpy as np
from mlir import ir
from mlir.dialects import arith, scf, vector

from max.compiler.passes.ir_util import as_op
from max.compiler.pipelines.row_registers import const_index, drop_buffer, small_buffers


def _zero_indices(op: ir.Operation, first: int) -> bool:
    """Whether ``op``'s indices (its operands from ``first``) are constants 0."""
    rank = ir.MemRefType(op.operands[first - 1].type).rank
    return all(const_index(v) == 0 for v in list(op.operands)[first:first + rank])


def _whole(op: ir.Operation, buf: ir.Value, whole_t: ir.VectorType) -> bool:
    """A ``vector.load``/``vector.store`` of all of ``buf`` (as ``whole_t``) at index 0."""
    if op.name == "vector.load":
        return op.operands[0] == buf and op.results[0].type == whole_t and _zero_indices(op, 1)
    return (op.name == "vector.store" and op.operands[1] == buf
            and op.operands[0].type == whole_t and _zero_indices(op, 2))


def _masked_transfer(op: ir.Operation, view: ir.Value, shape: list[int]) -> bool:
    """A masked, in-bounds, minor-identity transfer of ``view`` whose vector has the buffer's
    shape, at index 0."""
    if op.name == "vector.transfer_read":
        vt, base, first = op.results[0].type, op.operands[0], 1
    elif op.name == "vector.transfer_write":
        vt, base, first = op.operands[0].type, op.operands[1], 2
    else:
        return False
    rank = len(shape)
    if base != view or not isinstance(vt, ir.VectorType) or list(vt.shape) != shape:
        return False
    # operands: [value,] memref, indices..., [padding,] mask
    expected = first + rank + (2 if op.name == "vector.transfer_read" else 1)
    if len(list(op.operands)) != expected or not _zero_indices(op, first):
        return False
    in_bounds = [ir.BoolAttr(a).value for a in ir.ArrayAttr(op.attributes["in_bounds"])]
    amap = ir.AffineMapAttr(op.attributes["permutation_map"]).value
    return all(in_bounds) and amap == ir.AffineMap.get_minor_identity(rank, rank)


def _remainder_loop(view_op: ir.Operation, buf: ir.Value, block_ops: list[ir.Operation],
                    shape: list[int]) -> ir.Operation | None:
    """The ``scf.for`` (without results) holding ``view_op`` (a subview of ``buf`` at offset 0
    with unit strides) in its body, itself in ``block_ops``, where every use of the view is a
    masked transfer in that body; else None."""
    if view_op.operands[0] != buf:
        return None
    if any(o != 0 for o in ir.DenseI64ArrayAttr(view_op.attributes["static_offsets"])) or any(
            s != 1 for s in ir.DenseI64ArrayAttr(view_op.attributes["static_strides"])):
        return None
    loop = view_op.parent
    if (loop is None or loop.name != "scf.for" or len(loop.results) != 0
            or loop not in block_ops):
        return None
    body = loop.regions[0].blocks[0]
    for use in view_op.results[0].uses:
        user = as_op(use.owner)
        if (user is None or user.parent != loop or user.operation.block != body
                or not _masked_transfer(user, view_op.results[0], shape)):
            return None
    return loop


def _carry(loop: ir.Operation, views: list[ir.Operation], value: ir.Value,
           vt: ir.VectorType) -> ir.Value:
    """Rebuilds ``loop`` to carry ``value`` (the buffer's contents, as ``vt``) through its
    body, each masked transfer of ``views`` a select; returns the value after the loop."""
    old = loop.opview
    with ir.InsertionPoint(loop), loop.location:
        new = scf.ForOp(old.lowerBound, old.upperBound, old.step, [value])
        for attr in loop.attributes:
            if attr.name not in new.operation.attributes:
                new.operation.attributes[attr.name] = attr.attr
    with ir.InsertionPoint(new.body):
        placeholder = scf.YieldOp([new.inner_iter_args[0]])
    body = loop.regions[0].blocks[0]
    moved = [o.operation for o in body.operations][:-1]  # the old scf.yield stays
    for op in moved:
        op.move_before(placeholder.operation)
    old.induction_variable.replace_all_uses_with(new.induction_variable)
    view_values = {v.results[0] for v in views}
    current = new.inner_iter_args[0]
    for op in moved:
        if op.name == "vector.transfer_read" and op.operands[0] in view_values:
            pad, mask = op.operands[-2], op.operands[-1]
            with ir.InsertionPoint(op), op.location:
                fill = vector.BroadcastOp(vt, pad).result
                op.results[0].replace_all_uses_with(arith.select(mask, current, fill))
        elif op.name == "vector.transfer_write" and op.operands[1] in view_values:
            with ir.InsertionPoint(op), op.location:
                current = arith.select(op.operands[-1], op.operands[0], current)
    placeholder.operation.operands[0] = current
    for op in moved:
        if op.name.startswith("vector.transfer_") and op.operands[
                0 if op.name == "vector.transfer_read" else 1] in view_values:
            op.erase()
    for v in views:
        v.erase()
    loop.erase()
    return new.results[0]


def _promote(alloc: ir.Operation) -> bool:
    buf = alloc.results[0]
    mt = ir.MemRefType(buf.type)
    shape = list(mt.shape)
    total = int(np.prod(shape, dtype=np.int64))
    whole_t = ir.VectorType.get([total], mt.element_type)
    vt = ir.VectorType.get(shape, mt.element_type)
    users = [as_op(u.owner) for u in buf.uses]
    if any(u is None for u in users):
        return False
    users = [u for u in users if u.name != "memref.dealloc"]
    wholes, views, loops = [], [], {}
    for user in users:
        if user.name == "memref.subview":
            views.append(user)
        elif _whole(user, buf, whole_t):
            wholes.append(user)
        else:
            return False
    if not views or not wholes:
        return False
    block = wholes[0].operation.block
    block_ops = [o.operation for o in block.operations]
    if any(w not in block_ops for w in wholes):
        return False
    for view in views:
        loop = _remainder_loop(view, buf, block_ops, shape)
        if loop is None:
            return False
        loops.setdefault(block_ops.index(loop), (loop, []))[1].append(view)
    # In block order: a whole store first; a loop or a whole load only once a store was seen.
    steps = sorted([(block_ops.index(w), w) for w in wholes] +
                   [(i, entry) for i, entry in loops.items()], key=lambda s: s[0])
    if steps[0][1] not in wholes or steps[0][1].name != "vector.store":
        return False
    value = None
    for _, step in steps:
        if isinstance(step, tuple):
            loop, loop_views = step
            location = loop.location
            with ir.InsertionPoint(loop), location:
                carried = vector.ShapeCastOp(vt, value).result
            after = _carry(loop, loop_views, carried, vt)
            with ir.InsertionPoint.after(after.owner), location:
                value = vector.ShapeCastOp(whole_t, after).result
        elif step.name == "vector.store":
            value = step.operands[0]
        else:
            step.results[0].replace_all_uses_with(value)
    for w in wholes:
        w.erase()
    drop_buffer(alloc)
    return True


def promote_remainder_buffers(module: ir.Module) -> int:
    """Replaces each small vector buffer used as the module doc says; returns how many."""
    return sum(1 for alloc in small_buffers(module) if _promote(alloc))


__all__ = ["promote_remainder_buffers"]
