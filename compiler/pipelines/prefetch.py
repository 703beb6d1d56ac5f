"""Software prefetch of the quantized weight rows in the decode qmatmul (``quant_gemv``).

The decode loop streams each weight row once and spends a few cycles on each 20-byte block,
and the hardware prefetcher, which follows misses, left much of each row to be waited for: in
SmolLM2's decoder the same loops read their weights at about 6 GB/s from memory against
14 GB/s from cache. At each weight row ``n`` of a loop tagged ``mo.qdecode_rows``, every cache
line of row ``n + DISTANCE`` (clamped to the last row) is prefetched: a decode step went from
16.3 to 10.5-11.6 ms (into L1, DISTANCE 1: 12.4, 2: 11.4-13.6, 4: 10.5-11.6, 6 and 8:
10.4-11.7). Into L2 instead, with weights in huge pages and split blocks, SmolLM2 decoded
92.7 -> 100-106 tokens/s (DISTANCE 6, 8, 12, 16 alike; 32: 94.7).
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, memref

from max.compiler.lowering.quant_gemv import ROWS_ATTR

DISTANCE = 8  # rows ahead
# Into L2 (prefetcht1), not L1: an L1 prefetch holds one of the core's ~16 line fill buffers
# until the line arrives, which capped the stream at about 13 GB/s on 2 cores.
LOCALITY = 2
LINE = 64  # bytes


def _weight(loop: ir.Operation) -> ir.Value | None:
    """The one static rank-2 i8 memref the loop's body reads with vector transfers (the
    weight blocks), or None."""
    found: dict[str, ir.Value] = {}

    def walk(op: ir.Operation) -> None:
        for region in op.regions:
            for block in region.blocks:
                for child in block.operations:
                    o = child.operation
                    if o.name == "vector.transfer_read":
                        t = o.operands[0].type
                        if (isinstance(t, ir.MemRefType) and t.rank == 2 and t.has_static_shape
                                and isinstance(t.element_type, ir.IntegerType)
                                and t.element_type.width == 8):
                            found.setdefault(o.operands[0].get_name(), o.operands[0])
                    walk(o)

    walk(loop)
    return next(iter(found.values())) if len(found) == 1 else None


def _row_of(loop: ir.Operation) -> tuple[ir.Value, ir.Operation] | None:
    """The weight row of an iteration (``n0 + r``, the body's addi of the induction variable)
    and the op after it, where the prefetches go."""
    block = loop.regions[0].blocks[0]
    ops = list(block.operations)
    for o, nxt in zip(ops, ops[1:]):
        op = o.operation
        if op.name == "arith.addi" and op.operands[1] == block.arguments[0]:
            return op.results[0], nxt.operation
    return None


def _tagged_loops(op: ir.Operation, out: list[ir.Operation]) -> list[ir.Operation]:
    for region in op.regions:
        for block in region.blocks:
            for child in block.operations:
                if ROWS_ATTR in child.operation.attributes:
                    out.append(child.operation)
                _tagged_loops(child.operation, out)
    return out


def prefetch_weights(module: ir.Module) -> int:
    """Inserts the prefetches (after bufferization); returns how many loops got them."""
    done = 0
    for loop in _tagged_loops(module.operation, []):
        w, found = _weight(loop), _row_of(loop)
        if w is None or found is None:
            continue
        rows, width = ir.MemRefType(w.type).shape
        row, after = found
        with ir.InsertionPoint(after), loop.location:
            idx = ir.IndexType.get()
            ahead = arith.minsi(arith.addi(row, arith.constant(idx, DISTANCE)),
                                arith.constant(idx, rows - 1))
            # Rows are not line-aligned: the last byte's line too.
            for col in sorted({*range(0, width, LINE), width - 1}):
                memref.prefetch(w, [ahead, arith.constant(idx, col)], False, LOCALITY, True)
        done += 1
    return done
