"""One widening of a 16-bit float tensor per consumer, so that fusion puts it inside each.

A float16 softmax or layer norm computes in f32 (``lowering/precision.py``): its input is
widened by one elementwise generic, read by two consumers (the max reduction and the
``exp(x - max)`` op). ``linalg-fuse-elementwise-ops`` only fuses a producer with one use, so
the widened copy stayed a tensor of its own: an f32 buffer twice the input's size, written
and read back (at [512, 4096] 8 MiB of first-touched memory, about 1.5 ms, more than the
softmax itself). Widening again in each consumer costs one conversion per load instead.

Runs before the fusion pipeline. Each clone is tagged with a distinct ``mo.widen`` so that
the CSE which precedes fusion does not merge the clones back; fusion drops the tag with the
producer.
"""

from __future__ import annotations

from mlir import ir

from max.compiler.passes.ir_util import blocks

_TAG = "mo.widen"


def _is_widening(op: ir.Operation) -> bool:
    """A one-input generic whose body is only ``arith.extf`` of a 16-bit float."""
    if op.name != "linalg.generic" or len(op.operands) != 2 or len(op.results) != 1:
        return False
    body = [o.operation for o in op.regions[0].blocks[0].operations]
    if [o.name for o in body] != ["arith.extf", "linalg.yield"]:
        return False
    return str(body[0].operands[0].type) in ("f16", "bf16")


def duplicate_widenings(module: ir.Module) -> int:
    """Clones each widening generic with several generic consumers, one per consumer."""
    i64 = ir.IntegerType.get_signless(64)
    n = 0
    for block in list(blocks(module.operation)):
        for op in list(block.operations):
            op = op.operation
            if not _is_widening(op):
                continue
            uses = [(u.owner, u.operand_number) for u in op.results[0].uses]
            owners = [o.operation if hasattr(o, "operation") else o for o, _ in uses]
            if len(uses) < 2 or any(o.name != "linalg.generic" for o in owners):
                continue
            for owner, (_, number) in list(zip(owners, uses))[1:]:
                with ir.InsertionPoint(owner):
                    clone = op.clone()
                n += 1
                clone.attributes[_TAG] = ir.IntegerAttr.get(i64, n)
                owner.operands[number] = clone.results[0]
    return n


__all__ = ["duplicate_widenings"]
