"""Activation (and bias) epilogues of panel matmuls, run on each C block while it is in cache.

A matmul against a weight in panels (:mod:`matmul_pack`) computes C as ``[rows, J, P]``;
an elementwise op that reads all of C, such as ``gelu(x @ W + b)``, was an elementwise pass
of its own after the whole of C was written: C read back from L2 or memory, another fork and
join ([1, 128, 384] @ [384, 1536], then bias + GELU: 56 us of about 530). ``fuse_epilogues``
never took it: it forms groups around a ``linalg.matmul``, which the panel rewrite replaced.

:func:`fuse` (in ``schedule_tensors``, after :func:`matmul_pack.rewrite`) rewrites such an op
``g`` over C's own view ``[rows, J, P]`` (a bias ``[N]`` read as ``[J, P]``, a whole tensor
such as a residual reshaped to ``[rows, J, P]``; the helpers of :mod:`matmul_init`) and tags
it :data:`PANEL_EPILOGUE` (the operand index of C); the panel matmul and its zero fill become
:data:`~matmul_schedule.FUSED`, scheduled by ``g``'s schedule only. Then ``g`` is the root of
the group: the thread split fuses the matmul and the fill into each thread's part (the
matmul's own split: rows, or panels for few rows), and :func:`schedule` tiles ``g`` into the
matmul's cache tiles (rows x panels, at most 128 x 256: 128 KiB) and pulls the matmul and its
fill into each, so that each block of C meets the epilogue right after its last K block,
from L2, and the matmul's register kernel is unchanged. Only a matmul against a weight in
panels (no per-call copy of B, see ``matmul_pack``) whose C starts as a fill used by it
alone, and an f32 ``g``.
"""

from __future__ import annotations

from collections.abc import Callable

from mlir import ir
from mlir.dialects import tensor

from max.compiler.lowering.builders import PARALLEL, generic
from max.compiler.passes.ir_util import as_op
from max.compiler.pipelines import arg_layouts, matmul_pack
from max.compiler.pipelines import transform_script as ts
from max.compiler.pipelines.dps_inits import KEEP_APART, init_chain
from max.compiler.pipelines.matmul_init import (clone_body, panel_maps, panel_operands,
                                                panel_rows)
from max.compiler.pipelines.matmul_schedule import (FUSED, body_reads_output_or_index,
                                                   used_only_by)

PANEL_EPILOGUE = "mo.pepi"  # on the epilogue generic: the operand index of the panel matmul's C
# On the tensor.empty that the panel matmul's C starts from (its fill's destination), the
# epilogue's number in the function: C is then scratch of one cache tile per thread. CSE
# merged it with the epilogue's own empty result of the same shape; the fill then wrote into
# the tensor the threads write their results to, and bufferization copied each thread's
# whole share (3 MiB at 1024 x 1536) into a buffer of its own, every call.
SCRATCH = "mo.pepi_c"
# The rows x panels of the epilogue's tiles: one row of one panel (a vector of P lanes).
TILE = [1, 1, 0]

_DYN = ir.ShapedType.get_dynamic_size()


def fuse(module: ir.Module, classify: Callable[[ir.Operation], str | None]) -> int:
    """Rewrites each such epilogue (see the module doc); returns how many."""
    count = 0
    for g, _ in arg_layouts.top_level_ops(module):
        if g.name == "linalg.generic" and _rewrite(g, classify, count):
            count += 1
    return count


def _panel_product(v: ir.Value, n: int) -> tuple[ir.Operation, list[ir.Operation]] | None:
    """(panel matmul, the reshapes from its result to ``v``) where ``v`` is the panel matmul's
    C viewed as ``[rows, N]`` (a ``collapse_shape``), or as ``[*lead, N]`` through a
    ``tensor.reshape`` of that, each used once; else None."""
    chain: list[ir.Operation] = []
    op = as_op(v.owner)
    if op is not None and op.name == "tensor.reshape":
        if len(list(op.results[0].uses)) != 1:
            return None
        chain.append(op)
        op = as_op(op.operands[0].owner)
    if (op is None or op.name != "tensor.collapse_shape"
            or len(list(op.results[0].uses)) != 1):
        return None
    chain.append(op)
    pmm = as_op(op.operands[0].owner)
    if (pmm is None or matmul_pack.PACKED not in pmm.attributes
            or matmul_pack.BLOCK_PACK in pmm.attributes or FUSED in pmm.attributes
            or len(list(pmm.results[0].uses)) != 1):
        return None
    c3 = ir.RankedTensorType(pmm.results[0].type)
    if c3.shape[1] * c3.shape[2] != n or ir.RankedTensorType(op.results[0].type).shape[-1] != n:
        return None
    return pmm, chain


def _rewrite(g: ir.Operation, classify, number: int) -> bool:
    if classify(g) != "elementwise" or len(g.results) != 1 or body_reads_output_or_index(g):
        return False
    out_t = ir.RankedTensorType(g.results[0].type)
    if str(out_t.element_type) != "f32" or out_t.rank < 2 or out_t.shape[-1] == _DYN:
        return False
    maps = [ir.AffineMapAttr(a).value for a in ir.ArrayAttr(g.attributes["indexing_maps"])]
    rank = len(maps[-1].results)
    found = None
    for i, v in enumerate(list(g.operands)[:-1]):
        if maps[i] == ir.AffineMap.get_identity(rank) and v.type == out_t:
            found = _panel_product(v, out_t.shape[-1])
            if found is not None:
                p = i
                break
    if found is None:
        return False
    pmm, chain = found
    fill = as_op(pmm.operands[2].owner)
    if fill is None or fill.name != "linalg.fill" or not used_only_by(fill.results[0], pmm):
        return False
    scratch = as_op(fill.operands[1].owner)
    if scratch is None or scratch.name != "tensor.empty":
        return False
    new_maps = panel_maps(g, p, maps)
    if new_maps is None:
        return False
    ins = list(g.operands)[:-1]
    with ir.InsertionPoint(g), g.location:
        rows_static, rows, j = panel_rows(pmm)
        others = [v for i, v in enumerate(ins) if i != p]
        operands, views = panel_operands(others, new_maps, rows_static, rows, j)
        operands.insert(p, pmm.results[0])
        views.insert(p, ir.AffineMap.get_identity(3))
        empty = tensor.empty([rows, j, matmul_pack.PANEL], out_t.element_type)
        # An output's init stays apart from the other outputs' (see dps_inits).
        roots = init_chain(g.results[0])
        if roots and KEEP_APART in roots[-1].attributes:
            as_op(empty.owner).attributes[KEEP_APART] = roots[-1].attributes[KEEP_APART]
        old_block = g.regions[0].blocks[0]
        args = list(old_block.arguments)[:-1]

        def body(*new_args: ir.Value) -> ir.Value:
            return clone_body(old_block, dict(zip(args, new_args)))

        g3 = generic(operands, [empty], views + [ir.AffineMap.get_identity(3)],
                     [PARALLEL] * 3, body)[0]
        flat_t = ir.RankedTensorType.get([rows_static, out_t.shape[-1]], out_t.element_type)
        result = tensor.collapse_shape(flat_t, g3, [[0], [1, 2]])
        if chain[0].name == "tensor.reshape":  # back to g's [*lead, N]
            result = tensor.reshape(out_t, result, chain[0].operands[1])
    g3_op = as_op(g3.owner)
    g3_op.attributes[PANEL_EPILOGUE] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), p)
    for op in (pmm, fill):
        op.attributes[FUSED] = ir.UnitAttr.get()
    scratch.attributes[SCRATCH] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), number)
    g.results[0].replace_all_uses_with(result)
    g.erase()
    for op in chain:  # outermost first: each was the only user of the next
        op.erase()
    return True


def _matmul_of(g: ir.Operation) -> ir.Operation:
    return as_op(g.operands[ir.IntegerAttr(g.attributes[PANEL_EPILOGUE]).value].owner)


def tiles(g: ir.Operation) -> tuple[tuple[int, ...], ...]:
    """((mc, jc, kc), (C's operand index,)): the panel matmul's cache tile (0: a whole dim)."""
    (cache,) = matmul_pack.tiles(_matmul_of(g))
    return cache, (ir.IntegerAttr(g.attributes[PANEL_EPILOGUE]).value,)


def matmul_of(g: ir.Operation) -> ir.Operation | None:
    """The panel matmul whose epilogue ``g`` is (what the thread gate counts as its work)."""
    return _matmul_of(g) if PANEL_EPILOGUE in g.attributes else None


def thread_plan(g: ir.Operation, threads: int, min_macs: int):
    """The panel matmul's split (rows, or panels for few rows) for its epilogue ``g``, which
    has the matmul's loops but K: the matmul and then its fill fused into each part."""
    plan = matmul_pack.thread_plan(_matmul_of(g), threads, min_macs)
    if plan is None:
        return None
    _, _, axis, size = plan
    p = ir.IntegerAttr(g.attributes[PANEL_EPILOGUE]).value
    return 3, (p, 2), axis, size


def schedule(sid: int, g: str, plan: tuple[tuple[int, ...], ...]) -> str:
    """Transform ops (inside a suppressed sequence) for the panel epilogue ``g``: tiled to
    the matmul's cache tiles, the matmul and its fill pulled into each; in each, the fill
    and ``g`` in :data:`TILE` tiles and the matmul in K blocks of its register kernel (see
    ``matmul_pack.register_tiles``). Rows that the cache tile does not divide (symbolic rows,
    a thread's uneven share) are peeled off, their register tiles padded, as the panel
    matmul's own schedule does."""
    (mc, jc, kc), (p,) = plan
    loops = (mc > 0) + (jc > 0)
    mm, fill = f"%qm{sid}", f"%qf{sid}"
    if loops:
        # Tiled with its producers pulled into the tiles: the matmul, and through the
        # matmul's destination its fill (tile-and-fuse; fuse_into_containing_op printed ops
        # for diagnostics, 0.3 s an op in a 6-layer MiniLM).
        s = (f"    %qa{sid}, %qa{sid}l:{loops} = transform.structured.fuse {g} tile_sizes "
             f"[{mc}, {jc}, 0] : ({ts.ANY}) -> ({ts.ANY}{(', ' + ts.ANY) * loops})\n")
        g = f"%qa{sid}"
        # The fill's destination, fused as a slice of the whole scratch C, becomes a tensor of
        # the tile's own size: with no thread split around (one thread) the scratch was all
        # of C (3 MiB at 3136 x 256), each tile's block written back to memory in the end.
        s += (f"    transform.apply_patterns to %qa{sid}l#0 {{\n"
              f"      transform.apply_patterns.tensor.fold_tensor_empty\n"
              f"    }} : {ts.ANY}\n")
    else:
        s = ""
    s += (f"    {mm} = transform.get_producer_of_operand {g}[{p}] : ({ts.ANY}) -> {ts.ANY}\n"
          f"    {fill} = transform.get_producer_of_operand {mm}[2] : ({ts.ANY}) -> {ts.ANY}\n")
    s += ts.tile(fill, f"qft{sid}", TILE) + ts.done(f"%qft{sid}")
    s += ts.tile(g, f"qgt{sid}", TILE) + ts.done(f"%qgt{sid}")
    if kc:
        s += ts.tile(mm, f"qk{sid}", [0, 0, 0, kc])
        mm = f"%qk{sid}"
    if not mc:
        return s + matmul_pack.register_tiles(sid, mm)
    # The row loop peeled: every block but the last is static (see matmul_pack.schedule).
    mark = f"mo.qrows{sid}"
    s += f'    transform.annotate {mm} "{mark}" : {ts.ANY}\n'
    s += ts.peel(f"%qa{sid}l#0", f"qpr{sid}")
    s += (f"    %qr{sid} = transform.structured.match attributes{{{mark}}} in %root : "
          f"({ts.ANY}) -> {ts.ANY}\n"
          f"    %qrm{sid}, %qrr{sid} = transform.split_handle %qr{sid} "
          f"{{fail_on_payload_too_small = false}} : ({ts.ANY}) -> ({ts.ANY}, {ts.ANY})\n")
    return (s + matmul_pack.register_tiles(sid, f"%qrm{sid}")
            + f"    transform.foreach %qrr{sid} : {ts.ANY} {{\n"
            f"    ^bb0(%qrx{sid}: {ts.ANY}):\n"
            + matmul_pack.register_tiles(f"{sid}_", f"%qrx{sid}", pad=True)
            + "    }\n")


__all__ = ["PANEL_EPILOGUE", "SCRATCH", "fuse", "matmul_of", "schedule", "thread_plan", "tiles"]
