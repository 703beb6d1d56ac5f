"""A row's small vector buffer kept in registers: its stores and loads become vector values.

A row reduction tiled along the row keeps its partial sums (or maxima) in a buffer of one
vector tile (``tile_reduction_using_for``'s partial result, ``memref<1x1x64xf32>`` after
bufferization). Where the row is not whole tiles, its remainder is folded into the front of
that buffer before the final reduction, all through memory:

    vector.store %body, %buf             : vector<64xf32>   (the row's 64 first lanes)
    %x = vector.load %buf[0..13]         : vector<13xf32>
    vector.store (%x + %rest), %buf[0..13]
    %all = vector.load %buf              : vector<64xf32>   (spans both stores)

A load that spans two stores (one partly over the other) cannot take its value from the
store queue: it waits for both to reach the cache, every row. A sum over rows of 77 floats
took twice the time of rows of 80 (4096 rows, one thread: 80 us against 41; torch 58 and 32);
layer norm alike. Here a buffer that only such accesses at constant positions use, all in one
block and starting with a store of the whole buffer there, is replaced by the vector values
themselves (a partial store an ``insert_strided_slice``, a partial load an
``extract_strided_slice``): no memory, no stall.
"""

from __future__ import annotations

import numpy as np
from mlir import ir
from mlir.dialects import vector

from max.compiler.passes.ir_util import as_op, static_subview_offset, walk_ops

MAX_ELEMENTS = 256  # buffers up to this many elements (16 zmm of f32)


def const_index(v: ir.Value) -> int | None:
    """The value of an ``arith.constant`` integer, else None."""
    op = as_op(v.owner)
    if op is None or op.name != "arith.constant":
        return None
    attr = op.attributes["value"]
    return ir.IntegerAttr(attr).value if isinstance(attr, ir.IntegerAttr) else None


def _access(op: ir.Operation, base: int, mem: ir.Value) -> tuple[int, int] | None:
    """(element offset in the buffer, lane count) of a 1-D vector.load / vector.store of
    ``mem`` (the buffer, or a view ``base`` elements into it), at constant indices along its
    innermost, contiguous dim."""
    vt = op.results[0].type if op.name == "vector.load" else op.operands[0].type
    if not isinstance(vt, ir.VectorType) or ir.VectorType(vt).rank != 1:
        return None
    first = 1 if op.name == "vector.store" else 0
    if op.operands[first] != mem:
        return None
    indices = [const_index(v) for v in list(op.operands)[first + 1:]]
    if None in indices:
        return None
    mt = ir.MemRefType(mem.type)
    strides, _ = mt.get_strides_and_offset()
    if (strides[-1] != 1 or any(d != 1 for d in mt.shape[:-1])
            or any(i != 0 for i in indices[:-1])):
        return None  # a row: every dim but the last of size 1
    return base + indices[-1], ir.VectorType(vt).shape[0]


def _uses(buf: ir.Value) -> list[tuple[ir.Operation, int, ir.Value]] | None:
    """Every load/store of ``buf`` as (op, view offset, the memref it names), or None if
    anything else (another view, a copy, a call) uses it."""
    found = []
    for use in buf.uses:
        user = as_op(use.owner)
        if user is None:
            return None
        if user.name == "memref.dealloc":
            continue
        if user.name in ("vector.load", "vector.store"):
            found.append((user, 0, buf))
        elif user.name == "memref.subview":
            offset = static_subview_offset(user)
            if offset is None:
                return None
            for inner in user.results[0].uses:
                op = as_op(inner.owner)
                if op is None or op.name not in ("vector.load", "vector.store"):
                    return None
                found.append((op, offset, user.results[0]))
        else:
            return None
    return found


def _promote(alloc: ir.Operation) -> bool:
    buf = alloc.results[0]
    mt = ir.MemRefType(buf.type)
    total = int(np.prod(mt.shape, dtype=np.int64))
    uses = _uses(buf)
    if not uses:
        return False
    block_ops = _block_ops(uses[0][0])
    accesses = {}
    for op, base, mem in uses:
        where = _access(op, base, mem)
        if op not in block_ops or where is None or where[0] + where[1] > total:
            return False
        accesses[op] = where
    # In block order, the first access must store the whole buffer.
    ordered = [op for op in block_ops if op in accesses]
    first = ordered[0]
    if first.name != "vector.store" or accesses[first] != (0, total):
        return False
    et = mt.element_type
    whole_t = ir.VectorType.get([total], et)
    if first.operands[0].type != whole_t:
        return False
    value = None
    for op in ordered:
        offset, n = accesses[op]
        with ir.InsertionPoint(op), op.location:
            if op.name == "vector.store":
                v = op.operands[0]
                value = v if (offset, n) == (0, total) else vector.InsertStridedSliceOp(
                    v, value, [offset], [1]).result
            else:
                got = value if (offset, n) == (0, total) else vector.ExtractStridedSliceOp(
                    op.results[0].type, value, [offset], [n], [1]).result
                op.results[0].replace_all_uses_with(got)
    for op, _, _ in uses:
        op.erase()
    drop_buffer(alloc)
    return True


def drop_buffer(alloc: ir.Operation) -> None:
    """Erases ``alloc`` and what still uses it (its dealloc, views left without users)."""
    for use in list(alloc.results[0].uses):
        user = as_op(use.owner)
        if user is not None:
            user.erase()
    alloc.erase()


def _block_ops(op: ir.Operation) -> list[ir.Operation]:
    """The ops of ``op``'s block, in order."""
    parent = op.parent
    for region in parent.regions:
        for block in region.blocks:
            ops = [o.operation for o in block.operations]
            if op in ops:
                return ops
    return []


def small_buffers(module: ir.Module) -> list[ir.Operation]:
    """The static allocations of at most :data:`MAX_ELEMENTS` elements."""
    return [op for op in walk_ops(module.operation)
            if op.name in ("memref.alloc", "memref.alloca")
            and ir.MemRefType(op.results[0].type).has_static_shape
            and int(np.prod(ir.MemRefType(op.results[0].type).shape)) <= MAX_ELEMENTS
            and not op.operands]


def promote_row_buffers(module: ir.Module) -> int:
    """Replaces each small vector buffer used as the module doc says; returns how many."""
    return sum(1 for alloc in small_buffers(module) if _promote(alloc))


__all__ = ["MAX_ELEMENTS", "const_index", "drop_buffer", "promote_row_buffers", "small_buffers"]
