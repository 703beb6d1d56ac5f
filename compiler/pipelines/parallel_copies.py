"""Runs of independent copies split over threads: a concat's or stack's pieces, a few each.

A concat bufferizes to one ``memref.copy`` per piece into a slice of its result (then
``linalg.copy``, ``mo-copies-to-linalg``). Each piece alone is often too small to be worth a
fork (a stack of 64 ``[256, 256]`` tensors: 64 copies of 256 KiB, one core each), while the
whole run is large. :func:`parallel_copies` (stage ``mo-parallel-copies``) puts a run of such
copies into one ``scf.forall`` of one iteration per thread, thread ``t`` running a contiguous
share of the copies (balanced by bytes); ``mo-vectorize-copies`` then vectorizes each copy where
it is, and ``mo-forall-to-openmp`` makes the forall a parallel region.

A single copy that large by itself (a slice of a big tensor: ``x[:, :n]``, ``x[:, ::2]``) is
first cut into one copy per thread along its first dim of at least that many rows, and the
pieces make such a run.

Only copies that cannot race are grouped: every destination is a static, unit-stride slice of
its root buffer (a function argument or an allocation), the slices of one root are pairwise
disjoint, and no copy reads a root that another copy of the run writes.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, linalg, memref, scf

from max.compiler.passes.ir_util import as_op

MIN_BYTES = 1 << 20  # a run worth a fork: 1 MiB is ~40 us of copying on one core here
_DYN = ir.ShapedType.get_dynamic_size()
_VIEWS = frozenset({"memref.subview", "memref.cast", "memref.expand_shape",
                    "memref.collapse_shape", "memref.reinterpret_cast", "arith.constant",
                    "memref.dim"})
Box = list[tuple[int, int]]


def _root_box(v: ir.Value) -> tuple[ir.Value, Box | None] | None:
    """The buffer ``v`` is a slice of, and the slice as ``[lo, hi)`` per dim of the root (None:
    the whole root); None where that is not statically known."""
    box: Box | None = None
    while (op := as_op(v.owner)) is not None and op.name == "memref.subview":
        offsets = list(ir.DenseI64ArrayAttr(op.attributes["static_offsets"]))
        sizes = list(ir.DenseI64ArrayAttr(op.attributes["static_sizes"]))
        strides = list(ir.DenseI64ArrayAttr(op.attributes["static_strides"]))
        src_rank = ir.MemRefType(op.operands[0].type).rank
        if (_DYN in offsets or _DYN in sizes or any(s != 1 for s in strides)
                or len(offsets) != src_rank or ir.MemRefType(v.type).rank != src_rank):
            return None  # dynamic or rank-reducing: not worth proving
        if box is not None:
            offsets = [o + lo for o, (lo, _) in zip(offsets, box, strict=True)]
            sizes = [hi - lo for lo, hi in box]
        box = [(o, o + s) for o, s in zip(offsets, sizes, strict=True)]
        v = op.operands[0]
    if (op := as_op(v.owner)) is not None and op.name not in ("memref.alloc", "memref.alloca"):
        return None
    return v, box


def _disjoint(a: Box | None, b: Box | None) -> bool:
    if a is None or b is None:
        return False
    return any(ahi <= blo or bhi <= alo for (alo, ahi), (blo, bhi) in zip(a, b, strict=True))


def _bytes(t: ir.MemRefType) -> int:
    n = t.element_type.width // 8 if hasattr(t.element_type, "width") else 4
    for d in t.shape:
        n *= d
    return n


def _independent(copies: list[ir.Operation]) -> bool:
    written: list[tuple[ir.Value, list[Box | None]]] = []  # root, the slices written
    for c in copies:
        dest = _root_box(c.operands[1])
        if dest is None:
            return False
        root, box = dest
        boxes = next((b for r, b in written if r == root), None)
        if boxes is None:
            written.append((root, [box]))
        elif all(_disjoint(box, other) for other in boxes):
            boxes.append(box)
        else:
            return False
    for c in copies:
        src = c.operands[0]
        while (op := as_op(src.owner)) is not None and op.name in _VIEWS and op.operands:
            src = op.operands[0]
        if any(src == r for r, _ in written):
            return False
    return True


def _cut_large(run: list[ir.Operation], threads: int) -> list[ir.Operation]:
    """The run with each copy of at least :data:`MIN_BYTES` cut into ``threads`` copies of
    consecutive slices along its first dim of ``threads`` or more (so that the shares can
    balance; one large copy alone becomes one piece per thread)."""
    out: list[ir.Operation] = []
    for op in run:
        shape = ir.MemRefType(op.operands[1].type).shape
        axis = next((d for d, size in enumerate(shape) if size >= threads), None)
        if axis is None or _bytes(ir.MemRefType(op.operands[1].type)) < MIN_BYTES:
            out.append(op)
            continue
        chunk = -(-shape[axis] // threads)
        with ir.InsertionPoint(op), op.location:
            for lo in range(0, shape[axis], chunk):
                offsets = [lo if d == axis else 0 for d in range(len(shape))]
                sizes = [min(chunk, shape[axis] - lo) if d == axis else s
                         for d, s in enumerate(shape)]
                ones = [1] * len(shape)
                piece = linalg.copy(memref.subview(op.operands[0], offsets, sizes, ones),
                                    outs=[memref.subview(op.operands[1], offsets, sizes, ones)])
                out.append(piece.owner.operation)  # (its empty result list)
        op.erase()
    return out


def _runs(block: ir.Block) -> list[list[ir.Operation]]:
    """Maximal runs of static ``linalg.copy`` ops on memrefs, views only between them (a
    single copy too)."""
    runs: list[list[ir.Operation]] = []
    current: list[ir.Operation] = []
    for child in block.operations:
        op = child.operation
        if op.name == "linalg.copy" and all(
                isinstance(v.type, ir.MemRefType) and ir.MemRefType(v.type).has_static_shape
                for v in op.operands):
            current.append(op)
        elif op.name not in _VIEWS:
            if current:
                runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _shares(sizes: list[int], n: int) -> list[list[int]]:
    """Contiguous groups of indices, one per thread, of about equal total size."""
    total, groups, acc = sum(sizes), [[] for _ in range(n)], 0
    for i, s in enumerate(sizes):
        t = min(n - 1, acc * n // total)
        groups[t].append(i)
        acc += s
    return [g for g in groups if g]


def parallel_copies(module: ir.Module, threads: int) -> int:
    """Puts each large run of independent copies into an ``scf.forall`` over ``threads``;
    returns how many runs."""
    if threads < 2:
        return 0
    count = 0
    for fn in module.body.operations:
        if fn.operation.name != "func.func" or not fn.operation.regions[0].blocks:
            continue
        for block in fn.operation.regions[0].blocks:
            for run in _runs(block):
                sizes = [_bytes(ir.MemRefType(c.operands[1].type)) for c in run]
                if sum(sizes) < MIN_BYTES or not _independent(run):
                    continue
                run = _cut_large(run, threads)
                sizes = [_bytes(ir.MemRefType(c.operands[1].type)) for c in run]
                groups = _shares(sizes, threads)
                if len(groups) < 2:
                    continue
                with ir.InsertionPoint(run[-1]), run[-1].location:
                    loop = scf.ForallOp([0], [len(groups)], [1])
                    with ir.InsertionPoint(loop.body):
                        t = loop.body.arguments[0]
                        for g, members in enumerate(groups):
                            here = arith.cmpi(arith.CmpIPredicate.eq, t,
                                              arith.constant(ir.IndexType.get(), g))
                            branch = scf.IfOp(here)
                            with ir.InsertionPoint(branch.then_block):
                                fence = scf.YieldOp([])
                            for i in members:
                                run[i].move_before(fence)
                        scf.InParallelOp()
                count += 1
    return count


__all__ = ["MIN_BYTES", "parallel_copies"]
