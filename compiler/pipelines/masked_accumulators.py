"""Masked register tiles keep their accumulator in registers across the k loop.

After bufferization, the register tiles that are not a static, power-of-two shape are
vectorized masked at the full tile (``memref_vectorize``): the remainder tiles of dynamic
size (symbolic dims, a thread's share of the columns) and the static tiles of ragged
columns (:func:`ragged_tile_sizes`: N = 63 leaves 31). Each k loop then read and
wrote its C tile through masked transfers at every step, which MLIR's hoisting of vector
transfers leaves alone::

    scf.for %k ... {
      %acc = vector.transfer_read %c[%c0, %c0], %pad, %mask : memref<8x?xf32, ...>, ...
      ...
      vector.transfer_write %new, %c[%c0, %c0], %mask
    }

16 masked memory ops per 8 FMAs: symbolic ``[m,384] @ [384,n]`` at 100 x 1000 ran at 3.5 ms,
0.58 ms hoisted. The pair is hoisted (the read before the loop, the accumulator an iter_arg,
the write after it) when ``%c``, its indices, padding and mask are defined outside the loop
and nothing else in the loop may touch ``%c``'s memory: every other memory access in it is a
read of a memref whose root (through views) is another function argument or allocation (the
entry's arguments are distinct memory: docs/architecture.md, "CPU entry ABI").
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import scf

from max.compiler.passes.ir_util import (
    append_to_block,
    defined_within,
    view_root,
    walk_ops,
)
from max.compiler.pipelines import matmul_schedule


def ragged_tile_sizes(op: ir.Operation) -> list[int] | None:
    """Masked vector sizes (its :data:`VSIZES`) for a static register tile of a matmul or
    batch matmul whose columns are not a power of two (the remainder tile of N = 63: 31),
    else None (vectorized at its exact static shape). A ``vector<8x31xf32>`` accumulator was
    legalized element by element (13 GFLOP/s for [256, 1024] @ [1024, 63], 10x slower than
    N = 64); masked to 8 x 32 it is the full tile's code with masked loads and stores. Such
    a tile is left to the masked vectorization after bufferization (``memref_vectorize``:
    masks only on memrefs), where its accumulator is hoisted (below)."""
    if op.name not in ("linalg.matmul", "linalg.batch_matmul"):
        return None
    sizes = matmul_schedule.vector_sizes(op)
    if sizes is None:
        return None
    a, b = (ir.ShapedType(v.type).shape for v in list(op.operands)[:2])
    ranges = [*a[:-1], b[-1], a[-1]]  # (batch,) m, n, k
    n = ranges[-2]
    if (len(ranges) != len(sizes) or n & (n - 1) == 0
            or any(r > v or r < 1 for r, v in zip(ranges, sizes))):
        return None
    return sizes


_READS = {"vector.transfer_read", "vector.load", "vector.maskedload", "memref.load",
          "vector.gather", "affine.load"}
# Ops without memory effects that k loops hold (everything else makes a loop unsafe).
_PURE_DIALECTS = ("arith.", "math.", "index.")
_PURE = {"vector.extract", "vector.broadcast", "vector.fma", "vector.insert", "vector.splat",
         "vector.shape_cast", "vector.create_mask", "vector.constant_mask", "vector.contract",
         "vector.outerproduct", "vector.to_elements", "vector.from_elements",
         "vector.transpose", "vector.reduction", "vector.multi_reduction", "vector.bitcast",
         "vector.extract_strided_slice", "vector.insert_strided_slice", "vector.shuffle",
         "vector.step", "vector.yield", "memref.dim", "affine.apply", "affine.min",
         "affine.max", "scf.yield", "memref.subview", "memref.cast", "memref.reinterpret_cast",
         "memref.expand_shape", "memref.collapse_shape"}


def _root(v: ir.Value) -> ir.Value | None:
    """The function argument or allocation a memref views, else None (unknown memory)."""
    root = view_root(v)
    owner = root.owner
    if isinstance(owner, ir.Block):
        parent = owner.owner
        return root if parent is not None and parent.operation.name == "func.func" else None
    return root if owner.operation.name in ("memref.alloc", "memref.alloca") else None


def _only_reads_elsewhere(loop: ir.Operation, keep: tuple[ir.Operation, ir.Operation],
                          root: ir.Value) -> bool:
    """Whether every op in ``loop`` but ``keep`` is pure or reads memory other than ``root``."""
    safe = True

    def visit(op: ir.Operation) -> ir.WalkResult:
        nonlocal safe
        if op == loop or op in keep:
            return ir.WalkResult.ADVANCE
        name = op.name
        if name in _PURE or name.startswith(_PURE_DIALECTS) or name in ("scf.for", "scf.if",
                                                                         "vector.mask"):
            return ir.WalkResult.ADVANCE
        if name in _READS:
            other = _root(op.operands[0])
            if other is not None and other != root:
                return ir.WalkResult.ADVANCE
        safe = False
        return ir.WalkResult.INTERRUPT

    loop.walk(visit)
    return safe


def _access_key(op: ir.Operation) -> tuple | None:
    """What a masked ``transfer_read`` / ``transfer_write`` on a memref accesses (memref,
    indices, mask, map and bounds), None for other ops; a read's padding is left out."""
    if op.name == "vector.transfer_read":
        ops = list(op.operands)
        src, rest = ops[0], ops[1:]
    elif op.name == "vector.transfer_write":
        ops = list(op.operands)
        src, rest = ops[1], ops[2:]
    else:
        return None
    if not isinstance(src.type, ir.MemRefType):
        return None
    n_idx = ir.MemRefType(src.type).rank
    indices = rest[:n_idx]
    mask = rest[-1] if len(rest) == n_idx + (2 if op.name.endswith("read") else 1) else None
    if mask is None:
        return None
    return (src, *indices, mask, str(op.attributes["permutation_map"]),
            str(op.attributes["in_bounds"]))


def _forward_unrolled(loop: ir.Operation, body: ir.Block) -> int:
    """In a k loop unrolled n times, the C tile is read and written n times a step: the
    reads after the first take the value the write before wrote, and those writes go, so
    that one read and one write are left to hoist. Only where nothing else in the loop
    touches that memory. Lanes the mask leaves out then hold what the computation made of
    them, not the padding: they are never stored (the write is masked alike), and a register
    tile's lanes do not mix. Returns how many reads were forwarded."""
    groups: dict[tuple, list[ir.Operation]] = {}
    for op in [o.operation for o in body.operations]:
        key = _access_key(op)
        if key is not None:
            groups.setdefault(key, []).append(op)
    count = 0
    for key, ops in groups.items():
        kinds = ["r" if op.name.endswith("read") else "w" for op in ops]
        if len(ops) < 4 or kinds != ["r", "w"] * (len(ops) // 2):
            continue
        if any(ops[i].operands[0].type != ops[i + 1].results[0].type
               for i in range(1, len(ops) - 1, 2)):
            continue
        root = _root(key[0])
        if root is None or any(defined_within(v, loop) for v in key[:-2]):
            continue
        if not _only_reads_elsewhere(loop, tuple(ops), root):
            continue
        for i in range(1, len(ops) - 1, 2):
            write, read = ops[i], ops[i + 1]
            read.results[0].replace_all_uses_with(write.operands[0])
            read.erase()
            write.erase()
            count += 1
    return count


def _memref_pair(loop: ir.Operation, body: ir.Block
                 ) -> tuple[ir.Operation, ir.Operation] | None:
    """A masked (read, write) accumulator pair directly in ``loop``'s body, if hoistable."""
    ops = [o.operation for o in body.operations]
    writes = [(op, key) for op in ops if op.name == "vector.transfer_write"
              and (key := _access_key(op)) is not None]
    for read in ops:
        if read.name != "vector.transfer_read" or (key := _access_key(read)) is None:
            continue
        if any(defined_within(v, loop) for v in read.operands):
            continue
        for write, w_key in writes:
            if (w_key != key or write.operands[0].type != read.results[0].type
                    or not read.is_before_in_block(write)):
                continue
            root = _root(key[0])
            if root is None or not _only_reads_elsewhere(loop, (read, write), root):
                return None
            return read, write
    return None


def hoist_masked_memref_accumulators(module: ir.Module) -> int:
    """Hoists masked accumulator pairs on memrefs out of their ``scf.for``; returns how many."""
    loops = [op for op in walk_ops(module.operation) if op.name == "scf.for"]
    count = 0
    for loop in reversed(loops):  # innermost first
        body = loop.regions[0].blocks[0]
        _forward_unrolled(loop, body)
        pair = _memref_pair(loop, body)
        if pair is None:
            continue
        read, write = pair
        operands = list(loop.operands)
        first = read.clone(ir.InsertionPoint(loop))
        with ir.InsertionPoint(loop), loop.location:
            new = scf.ForOp(operands[0], operands[1], operands[2],
                            operands[3:] + [first.results[0]])
        new_body = new.body
        old_args, new_args = list(body.arguments), list(new_body.arguments)
        for a, b in zip(old_args, new_args[:len(old_args)]):
            a.replace_all_uses_with(b)
        read.results[0].replace_all_uses_with(new_args[-1])
        value = write.operands[0]
        ops = [o.operation for o in body.operations]
        yields = list(ops[-1].operands) + [value]
        for op in ops[:-1]:
            if op not in (read, write):
                append_to_block(new_body, op)
        with ir.InsertionPoint(new_body), loop.location:
            scf.YieldOp(yields)
        last = write.clone(ir.InsertionPoint.after(new.operation))
        last.operands[0] = new.results[len(operands) - 3]
        for k, r in enumerate(loop.results):
            r.replace_all_uses_with(new.results[k])
        loop.erase()
        count += 1
    return count


__all__ = ["hoist_masked_memref_accumulators", "ragged_tile_sizes"]
