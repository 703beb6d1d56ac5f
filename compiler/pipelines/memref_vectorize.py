"""Stages 2 and 3 of the CPU schedule (see :mod:`cpu_schedule`), after bufferization: what
peeling left over (remainder tiles, dynamic sizes) vectorized with masks, then the vector ops
lowered (contract -> outer products -> FMAs, transfers to rank 1).

Masks are only ever made on memrefs: masked vectorization on tensors hits an assertion abort
when canonicalization later makes a masked slice static. The vector sizes are the tile sizes,
a true upper bound of every remainder, so a mask never lets an access leave its slice.
"""

from __future__ import annotations

import re

from mlir import ir

from max.compiler.passes.ir_util import walk_ops
from max.compiler.pipelines import block_pack, layout_schedule, matmul_schedule, panel_views
from max.compiler.pipelines import transform_script as ts
from max.compiler.pipelines.conv_schedule import tiled_copies_to_linalg
from max.compiler.pipelines.cpu_schedule import VEC, mark_tiles, static_shapes
from max.compiler.pipelines.masked_accumulators import (
    hoist_masked_memref_accumulators,
    ragged_tile_sizes,
)

MR, NR = matmul_schedule.MR, matmul_schedule.NR


def _vector_sizes(op: ir.Operation) -> list[int] | bool:
    """Masked vectorization sizes: static sizes, or the tile size bounding a dynamic dim."""
    recorded = matmul_schedule.vector_sizes(op)
    if recorded is not None:
        # Static: exact vectors, but a matmul tile of ragged columns (masked at its full
        # register tile, see masked_accumulators.ragged_tile_sizes).
        return ragged_tile_sizes(op) if static_shapes(op) else recorded
    if op.name == "linalg.matmul":
        return [MR, NR, 1]
    if op.name == "linalg.fill":
        return [1] * (ir.MemRefType(op.operands[1].type).rank - 1) + [VEC]
    if op.name == "linalg.copy":
        return None  # static (tiled_copies_to_linalg): unmasked
    if op.name == "linalg.reduce":
        # The merge of tile_reduction_using_for's partial sums (static) left outside any loop
        # (a single row): not vectorized on tensors (see schedule_tensors).
        return None if static_shapes(op) else False
    if op.name != "linalg.generic":
        return False
    if (sizes := layout_schedule.vector_sizes(op)) is not None:
        return sizes
    # Tiled generics: all loops are tiled to 1 except the innermost, tiled to VEC.
    return [1] * (len(ir.ArrayAttr(op.attributes["iterator_types"])) - 1) + [VEC]


def vectorize_memrefs(module: ir.Module) -> None:
    """Stage 2 and 3: masked vectorization of remainders, then lowering of the vector ops."""
    from max.compiler.pipelines.max_select import select_running_extrema
    from max.compiler.pipelines.remainder_registers import promote_remainder_buffers
    from max.compiler.pipelines.row_fusion import hoist_row_buffers, prefetch_next_rows
    from max.compiler.pipelines.row_output import rows_into_output
    from max.compiler.pipelines.row_registers import promote_row_buffers
    from max.compiler.pipelines.self_copies import drop_self_copies
    from max.compiler.pipelines.sibling_loops import fuse_sibling_reductions

    block_pack.sequential_foralls(module)  # a panel matmul's block loops: plain loops
    drop_self_copies(module)
    panel_views.linear_panels(module)  # panels with plain strides (no index masks)
    hoist_row_buffers(module)  # one row buffer per thread, not a malloc per row
    rows_into_output(module)  # before the prefetch: it counts the rows each loop touches
    fuse_sibling_reductions(module)  # then the prefetch goes into the second loop left
    prefetch_next_rows(module)
    tiled_copies_to_linalg(module, ts.TILED)
    targets = mark_tiles(module, _vector_sizes)
    if targets:
        ts.apply(module, ts.vectorize_script(targets))
    ts.apply(module, layout_schedule.PREPARE_VECTORS)
    ts.apply(module, ts.LOWER_VECTORS)
    reassociate_sums(module)
    ts.run_passes(module, ts.CANON)
    select_running_extrema(module)  # (it matches the canonical loop form)
    hoist_masked_memref_accumulators(module)  # masked remainder tiles' C in registers
    promote_row_buffers(module)  # a row reduction's partial vector: no store-load stalls
    promote_remainder_buffers(module)  # the same through a symbolic row's masked remainder


def reassociate_sums(module: ir.Module) -> None:
    """Lets every float add/mul ``vector.reduction`` sum its lanes in any order.

    Without ``reassoc`` LLVM keeps the strict left-to-right order: a 64-lane horizontal sum
    becomes 64 dependent scalar adds (about 256 cycles of latency), which dominated short
    rows (an attention product-sum over a 64-wide head: 29 us where a tree takes a few). A
    tree of vector adds and shuffles changes only the rounding order, as numpy's pairwise
    sums do.
    """
    for op in walk_ops(module.operation):
        if op.name != "vector.reduction" or not isinstance(
                ir.VectorType(op.operands[0].type).element_type, ir.FloatType):
            continue
        if str(op.attributes["kind"]) not in ("#vector.kind<add>", "#vector.kind<mul>"):
            continue
        old = str(op.attributes["fastmath"]) if "fastmath" in op.attributes else ""
        flags = set(re.findall(r"\w+", old.partition("<")[2])) - {"none"}
        if "reassoc" in flags or "fast" in flags:
            continue
        flags.add("reassoc")
        op.attributes["fastmath"] = ir.Attribute.parse(
            f"#arith.fastmath<{','.join(sorted(flags))}>")


__all__ = ["reassociate_sums", "vectorize_memrefs"]
