"""Vector reads of every s-th element (``x[:, ::2]``, ``x[..., 1::3]``) as one contiguous
read and a shuffle.

A ``vector.transfer_read`` from a memref whose innermost stride is s > 1 has no vector load:
LLVM gets one scalar load and insert per lane (a stride-2 slice of ``[512, 4096]`` copied at
about 1 ns an element, three times PyTorch's copy). For a small static s, the ``(V - 1) s + 1``
elements from the first lane's to the last lane's are one contiguous run of the same buffer
(so reading them never leaves it): read as a masked load of ``V s`` lanes, the lanes past the
run masked off, then ``vector.shuffle`` picks lanes ``0, s, 2s, ...`` (AVX-512: two-source
permutes).

Stage ``mo-deinterleave-strided-reads``, after the copies and the memref vectorization, on
unmasked in-bounds reads of ``[1, .., 1, V]`` vectors (what the copies' tiles and the
elementwise schedules' rows read); anything else is left as it was.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, memref, vector

from max.compiler.lowering.builders import index_constant

MAX_STRIDE = 4  # wider: V * s lanes per read, and the shuffle's sources grow with it
MAX_LANES = 256  # V * s: the contiguous read, in elements


def _candidate(op: ir.Operation) -> tuple[int, int] | None:
    """(V, s) where ``op`` is a read this stage rewrites, else None."""
    if op.name != "vector.transfer_read" or not isinstance(op.operands[0].type, ir.MemRefType):
        return None
    src = ir.MemRefType(op.operands[0].type)
    vtype = ir.VectorType(op.results[0].type)
    if src.rank == 0 or len(op.operands) != src.rank + 2:  # source, indices, padding: no mask
        return None
    if not all(ir.BoolAttr(b).value for b in ir.ArrayAttr(op.attributes["in_bounds"])):
        return None
    if vtype.rank > src.rank or any(d != 1 for d in vtype.shape[:-1]):
        return None
    perm = ir.AffineMapAttr(op.attributes["permutation_map"]).value
    if perm != ir.AffineMap.get_minor_identity(src.rank, vtype.rank):
        return None
    width = getattr(vtype.element_type, "width", 0)
    if width < 8 or width % 8:
        return None
    try:
        strides, _ = src.get_strides_and_offset()
    except (ValueError, RuntimeError):  # a layout with no strided form
        return None
    s, lanes = strides[-1], vtype.shape[-1]
    if s == ir.ShapedType.get_dynamic_stride_or_offset() or not 2 <= s <= MAX_STRIDE:
        return None
    if lanes < 2 or lanes * s > MAX_LANES:
        return None
    return lanes, s


def _rewrite(op: ir.Operation, lanes: int, s: int) -> None:
    source, indices, padding = op.operands[0], list(op.operands[1:-1]), op.operands[-1]
    src = ir.MemRefType(source.type)
    vtype = ir.VectorType(op.results[0].type)
    elem = vtype.element_type
    dyn = ir.ShapedType.get_dynamic_stride_or_offset()
    run, wide = (lanes - 1) * s + 1, lanes * s
    with ir.InsertionPoint(op), op.location:
        meta = memref.ExtractStridedMetadataOp(source)
        strides, _ = src.get_strides_and_offset()
        start = meta.offset
        for d, idx in enumerate(indices):
            stride = meta.strides[d] if strides[d] == dyn else index_constant(strides[d])
            start = arith.AddIOp(start, arith.MulIOp(idx, stride).result).result
        flat_t = ir.MemRefType.get([run], elem, layout=ir.StridedLayoutAttr.get(dyn, [1]))
        flat = memref.ReinterpretCastOp(flat_t, meta.base_buffer, [start], [], [],
                                        ir.DenseI64ArrayAttr.get([dyn]),
                                        ir.DenseI64ArrayAttr.get([run]),
                                        ir.DenseI64ArrayAttr.get([1])).result
        wide_t = ir.VectorType.get([wide], elem)
        mask = vector.ConstantMaskOp(
            ir.VectorType.get([wide], ir.IntegerType.get_signless(1)),
            ir.DenseI64ArrayAttr.get([run])).result
        filler = vector.BroadcastOp(wide_t, padding).result
        full = vector.MaskedLoadOp(wide_t, flat, [index_constant(0)], mask, filler).result
        picked = vector.ShuffleOp(full, full, ir.DenseI64ArrayAttr.get(
            [i * s for i in range(lanes)])).result
        result = picked if vtype.rank == 1 else vector.ShapeCastOp(vtype, picked).result
    op.results[0].replace_all_uses_with(result)
    op.erase()


def deinterleave_strided_reads(module: ir.Module) -> int:
    """Rewrites each strided read :func:`_candidate` accepts; returns how many."""
    found: list[tuple[ir.Operation, int, int]] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if (hit := _candidate(op)) is not None:
            found.append((op, *hit))
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    for op, lanes, s in found:
        _rewrite(op, lanes, s)
    return len(found)


__all__ = ["MAX_STRIDE", "deinterleave_strided_reads"]
