"""A masked register tile's accumulator kept in registers across its k loop.

A matmul tile of ragged columns (``matmul_schedule.ragged_tile_sizes``: the remainder tile of
N = 63, 31 columns) is vectorized masked at the full register tile (8 x 32). Its k loop then
carries the C tile as a tensor, read and written through ``vector.mask`` regions at every k
step::

    %c = scf.for %k ... iter_args(%t = %init) -> (tensor<8x31xf32>) {
      %acc = vector.mask %m { vector.transfer_read %t[%c0, %c0], %pad ... }
      %new = vector.mask %m3 { vector.contract ... %acc }
      %w = vector.mask %m { vector.transfer_write %new, %t[%c0, %c0] ... }
      scf.yield %w
    }

MLIR's subset hoisting (``subset_hoisting``) does not look into ``vector.mask`` regions, so
the read and write stayed in the loop: 16 masked memory ops per 8 FMAs, 46 GFLOP/s for
[256, 1024] @ [1024, 63]. Here such a pair is hoisted by hand: the read before the loop (of
the loop's init), the accumulator a vector iter_arg, the write after the loop. Conditions:
the iter_arg has no other use, the read and the write use the same indices and mask, both
defined outside the loop (a ``vector.constant_mask`` inside is moved out first: it has no
operands), and the write's result is what the loop yields. The rewrite is then the same
as the unmasked one MLIR does.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import scf

from max.compiler.passes.ir_util import append_to_block, walk_ops


def hoist_masked_accumulators(module: ir.Module) -> int:
    """Hoists each masked accumulator read/write pair out of its ``scf.for``; returns how
    many."""
    loops = [op for op in walk_ops(module.operation) if op.name == "scf.for"]
    count = 0
    for loop in reversed(loops):  # innermost first: a rewritten loop replaces its op
        for i in range(len(loop.results)):
            pair = _pair(loop, i)
            if pair is not None:
                loop = _hoist(loop, i, *pair)
                count += 1
                break  # the loop op was replaced; one pair per loop is what tiles have
    return count


def _masked(op: ir.Operation, inner: str) -> ir.Operation | None:
    """The op ``inner`` inside the ``vector.mask`` ``op``, or None."""
    if op.name != "vector.mask":
        return None
    ops = [o.operation for o in op.regions[0].blocks[0].operations]
    return ops[0] if len(ops) == 2 and ops[0].name == inner else None


def _defined_outside(v: ir.Value, loop: ir.Operation) -> bool:
    owner = v.owner
    op = owner.owner if isinstance(owner, ir.Block) else owner
    while op is not None:
        op = op.operation
        if op == loop:
            return False
        if op.name == "func.func":
            return True
        op = op.parent
    return True


def _pair(loop: ir.Operation, i: int) -> tuple[ir.Operation, ir.Operation] | None:
    """The (read mask, write mask) ops of iter_arg ``i`` of ``loop``, if hoistable."""
    body = loop.regions[0].blocks[0]
    arg = body.arguments[1 + i]
    if not isinstance(arg.type, ir.RankedTensorType):
        return None
    uses = [u.owner.operation for u in arg.uses]
    if len(uses) != 2:
        return None
    read_mask = write_mask = None
    for user in uses:
        # The user is the transfer inside a vector.mask region: its parent op is the mask.
        if user.parent is None:
            return None
        parent = user.parent.operation
        if user.name == "vector.transfer_read" and _masked(parent, user.name) == user:
            read_mask = parent
        elif user.name == "vector.transfer_write" and _masked(parent, user.name) == user:
            write_mask = parent
    if read_mask is None or write_mask is None:
        return None
    read, write = _masked(read_mask, "vector.transfer_read"), _masked(write_mask,
                                                                      "vector.transfer_write")
    yield_op = list(body.operations)[-1].operation
    if (list(yield_op.operands)[i] != write_mask.results[0]
            or len(list(write_mask.results[0].uses)) != 1
            or read_mask.parent.operation != loop or write_mask.parent.operation != loop
            or list(read.operands)[0] != arg or list(write.operands)[1] != arg):
        return None
    # Same indices (operands after the source / the vector and destination), same maps.
    r_idx, w_idx = list(read.operands)[1:-1], list(write.operands)[2:]
    if len(r_idx) != len(w_idx) or any(a != b for a, b in zip(r_idx, w_idx)):
        return None
    for name in ("permutation_map", "in_bounds"):
        if str(read.attributes[name]) != str(write.attributes[name]):
            return None
    masks = [read_mask.operands[0], write_mask.operands[0]]
    owners = [m.owner for m in masks]
    if any(isinstance(o, ir.Block) for o in owners):
        return None
    owners = [o.operation for o in owners]
    for m, owner in zip(masks, owners):
        if not _defined_outside(m, loop) and (owner.name != "vector.constant_mask"
                                              or owner.parent.operation != loop):
            return None
    if masks[0] != masks[1] and not (
            owners[0].name == owners[1].name == "vector.constant_mask"
            and str(owners[0].attributes["mask_dim_sizes"])
            == str(owners[1].attributes["mask_dim_sizes"])):
        return None
    if not all(_defined_outside(v, loop) for v in r_idx + [list(read.operands)[-1]]):
        return None
    for m in masks:  # a constant mask: moved in front of the loop
        if not _defined_outside(m, loop):
            m.owner.move_before(loop)
    return read_mask, write_mask


def _hoist(loop: ir.Operation, i: int, read_mask: ir.Operation,
           write_mask: ir.Operation) -> ir.Operation:
    """Rewrites ``loop`` with iter_arg ``i`` as the read's vector; returns the new loop."""
    body = loop.regions[0].blocks[0]
    operands = list(loop.operands)
    inits = operands[3:]
    init = inits[i]
    # The read, of the init, before the loop.
    first = read_mask.clone(ir.InsertionPoint(loop))
    _masked(first, "vector.transfer_read").operands[0] = init
    new_inits = inits[:i] + [first.results[0]] + inits[i + 1:]
    with ir.InsertionPoint(loop), loop.location:
        new = scf.ForOp(operands[0], operands[1], operands[2], new_inits)
    new_body = new.body
    old_args = list(body.arguments)
    new_args = list(new_body.arguments)
    old_args[0].replace_all_uses_with(new_args[0])
    for k, (a, b) in enumerate(zip(old_args[1:], new_args[1:])):
        if k != i:
            a.replace_all_uses_with(b)
    read_mask.results[0].replace_all_uses_with(new_args[1 + i])
    value = list(_masked(write_mask, "vector.transfer_write").operands)[0]
    ops = [o.operation for o in body.operations]
    yields = list(ops[-1].operands)
    yields[i] = value
    for op in ops[:-1]:
        if op in (read_mask, write_mask):
            continue
        append_to_block(new_body, op)
    with ir.InsertionPoint(new_body), loop.location:
        scf.YieldOp(yields)
    # The write, of the final accumulator into the init, after the loop.
    last = write_mask.clone(ir.InsertionPoint.after(new.operation))
    transfer = _masked(last, "vector.transfer_write")
    transfer.operands[0] = new.results[i]
    transfer.operands[1] = init
    for k, r in enumerate(loop.results):
        r.replace_all_uses_with(last.results[0] if k == i else new.results[k])
    loop.erase()  # with the read, the write and the old yield still in its body
    return new.operation





# ----------------------------------------------------------------------------- on memrefs
#
# After bufferization the remainder tiles of dynamic size are vectorized masked
# (memref_vectorize); each k loop then reads and writes its C tile through masked transfers
# of a memref at every step, which MLIR's hoisting of vector transfers leaves alone:
#
#   scf.for %k ... {
#     %acc = vector.transfer_read %c[%c0, %c0], %pad, %mask : memref<8x?xf32, ...>, ...
#     ...
#     vector.transfer_write %new, %c[%c0, %c0], %mask
#   }
#
# The pair is hoisted when %c, its indices, padding and mask are defined outside the loop
# and nothing else in the loop may touch %c's memory: every other memory access in it is a
# read of a memref whose root (through views) is another function argument or allocation
# (the entry's arguments are distinct memory: see docs/architecture.md, "CPU entry ABI").

_VIEWS = {"memref.subview", "memref.cast", "memref.reinterpret_cast", "memref.expand_shape",
          "memref.collapse_shape"}
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
         "affine.max", "scf.yield", *_VIEWS}


def _root(v: ir.Value) -> object | None:
    """The function argument (its block and index) or allocation a memref views, else None."""
    while True:
        owner = v.owner
        if isinstance(owner, ir.Block):
            parent = owner.owner
            if parent is not None and parent.operation.name == "func.func":
                return ("arg", ir.BlockArgument(v).arg_number)
            return None
        op = owner.operation
        if op.name in _VIEWS:
            v = op.operands[0]
            continue
        if op.name in ("memref.alloc", "memref.alloca"):
            return op
        return None


def _only_reads_elsewhere(loop: ir.Operation, keep: tuple[ir.Operation, ir.Operation],
                          root: object) -> bool:
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


def _memref_pair(loop: ir.Operation, body: ir.Block
                 ) -> tuple[ir.Operation, ir.Operation] | None:
    """A masked (read, write) accumulator pair directly in ``loop``'s body, if hoistable."""
    ops = [o.operation for o in body.operations]
    writes = [op for op in ops if op.name == "vector.transfer_write"
              and isinstance(op.operands[1].type, ir.MemRefType)]
    for read in ops:
        if read.name != "vector.transfer_read" or not isinstance(read.operands[0].type,
                                                                 ir.MemRefType):
            continue
        n_idx = ir.MemRefType(read.operands[0].type).rank
        r_ops = list(read.operands)
        if len(r_ops) != 3 + n_idx:  # source, indices, padding, mask
            continue
        memref, indices, mask = r_ops[0], r_ops[1:1 + n_idx], r_ops[-1]
        if not all(_defined_outside(v, loop) for v in r_ops):
            continue
        for write in writes:
            w_ops = list(write.operands)
            if (len(w_ops) != 3 + n_idx or w_ops[1] != memref or w_ops[-1] != mask
                    or any(a != b for a, b in zip(w_ops[2:2 + n_idx], indices))
                    or w_ops[0].type != read.results[0].type
                    or not read.is_before_in_block(write)):
                continue
            if any(str(read.attributes[a]) != str(write.attributes[a])
                   for a in ("permutation_map", "in_bounds")):
                continue
            root = _root(memref)
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


__all__ = ["hoist_masked_accumulators", "hoist_masked_memref_accumulators"]
