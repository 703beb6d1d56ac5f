"""Vectorized copies: every ``linalg.copy`` left after bufferization becomes vector code.

Bufferization copies where it cannot write in place (an ``insert_slice`` into a concat's
result, a fill that two users need): ``mo-copies-to-linalg`` makes those ``memref.copy`` ops
``linalg.copy`` (no runtime library), which would otherwise become scalar loops. Each is tiled
``[1, .., 1, VEC]`` and vectorized with masks of those sizes, like the remainders of stage 2 of
``cpu_schedule``: the vector sizes bound every tile, so no access leaves its slice. A copy the
transforms cannot handle stays a loop and is recorded by ``mo-record-fallbacks``.

The same goes for a ``linalg.map`` on memrefs: what a ``tensor.generate`` bufferizes to (the
positions ``[0, n)`` that argmax/argmin read), vectorized with ``linalg.index`` as a vector step;
and for a ``linalg.fill`` on memrefs that no schedule took: the padding of a symbolic batch
matmul's remainder tile (``structured.pad`` fills a scratch tile first), a gather's
out-of-range default. Left alone, each was a scalar loop, and its kernel counted as plain.
"""

from __future__ import annotations

from mlir import ir

from max.compiler.passes.ir_util import unmark
from max.compiler.pipelines import cpu_schedule
from max.compiler.pipelines import transform_script as ts

_CID = "mo.cid"
_LOOP = "mo.copy_loop"  # the outer loop of a tiled copy (its vector ops lowered there)


def _copies(module: ir.Module) -> list[ir.Operation]:
    found: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name in ("linalg.copy", "linalg.map") and all(
                isinstance(v.type, ir.MemRefType) and ir.MemRefType(v.type).rank >= 1
                for v in op.operands):
            found.append(op)
        elif (op.name == "linalg.fill" and isinstance(op.operands[-1].type, ir.MemRefType)
              and ir.MemRefType(op.operands[-1].type).rank >= 1):
            found.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return found


def vectorize_copies(module: ir.Module) -> int:
    """Tiles and vectorizes every ranked ``linalg.copy``, ``linalg.map`` and ``linalg.fill``
    on memrefs; returns how many."""
    copies = _copies(module)
    if not copies:
        return 0
    # One match per rank, then each op on its own (a failure leaves only that op as it was):
    # a match per op walked the module once per copy (MiniLM: 457 copies, 2.1 s).
    i64 = ir.IntegerType.get_signless(64)
    ranks: set[int] = set()
    for op in copies:
        rank = ir.MemRefType(op.operands[-1].type).rank
        op.attributes[_CID] = ir.IntegerAttr.get(i64, rank)
        ranks.add(rank)
    script = ""
    for rank in sorted(ranks):
        sizes = [1] * (rank - 1) + [cpu_schedule.VEC]
        script += (
            f"  %c{rank} = transform.structured.match attributes{{{_CID} = {rank} : i64}} in "
            f"%root : ({ts.ANY}) -> {ts.ANY}\n"
            f"  transform.foreach %c{rank} : {ts.ANY} {{\n"
            f"  ^bb0(%one{rank}: {ts.ANY}):\n"
            f"    transform.sequence %one{rank} : {ts.ANY} failures(suppress) {{\n"
            f"    ^bb1(%op{rank}: {ts.ANY}):\n"
            f"      %t{rank}, %l{rank}:{rank} = transform.structured.tile_using_for %op{rank} "
            f"tile_sizes {sizes} : ({ts.ANY}) -> ({', '.join([ts.ANY] * (rank + 1))})\n"
            f"      transform.structured.vectorize %t{rank} vector_sizes {sizes} : {ts.ANY}\n"
            f'      transform.annotate %l{rank}#0 "{_LOOP}" : {ts.ANY}\n'
            f"    }}\n"
            f"  }}\n")
    ts.apply(module, ts.HEADER + script + ts.FOOTER)
    # The vector ops to lower are in the copies' loops: the rest of the module was lowered
    # by mo-vectorize-memrefs (on MiniLM, lowering in every function took 0.28 s).
    ts.apply(module, ts.lower_vectors_in(_LOOP))
    unmark(module, _LOOP)
    ts.run_passes(module, ts.CANON)
    return len(copies)


__all__ = ["vectorize_copies"]
