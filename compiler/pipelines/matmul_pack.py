"""Packed matmuls: B read as P-column panels ``Bp[N/P, K, P]``, each one contiguous (P, the
register tile's width: 32 with AVX-512, 16 with AVX2).

A plain ``linalg.matmul`` reads B[k, n0:n0+P] for every k: rows N floats apart (4 KiB at
N=1024), a new page each, that no prefetcher follows; at 1024^3 that kernel reaches about 70%
of MKL on one core (MLIR-FACTS 1, remeasured). In panels, the ``K x P`` slice a register tile
walks is one contiguous stream, and it stays in L1 while the register tile runs down all the
rows of the cache tile (the register loops are interchanged: panel outer, rows inner).

:func:`rewrite` (in ``schedule_tensors``, before the epilogue groups are formed) turns each
eligible ``C = A @ B`` into ``C3[m, j, n] += A[m, k] * Bp[j, k, n]``: a 3-D ``linalg.generic``
tagged :data:`PACKED`, on C viewed as ``[M, N/P, P]`` (the same bytes). Bp is

* a load-time argument's panels: when B is a named weight or an externalized constant (a
  trailing entry argument, see ``arg_layouts``), read by this matmul only, as given or
  through a transpose (``x @ W.T``), the IR reads the argument's bytes as ``[N/P, K, P]``
  and the module records the layout (``"panels"`` or ``"panels_t"``, 16 columns wide with AVX2
  ``"panels16"`` / ``"panels16_t"``: ``runtime/layouts``):
  the compile worker stores a constant in that order in ``constants.bin``, the engine
  rearranges a weight once at load time. The record is made by the same stage that rewrites
  the IR, so a failed schedule (the whole module restored and run as plain loops) records
  nothing. After bufferization :func:`panel_views.linear_panels` makes that view a cast
  with plain strides, so that the kernel's B pointer just advances.
* else packed at run time by a copy (a transposing generic), for enough rows to pay for it
  (:data:`MIN_ROWS_RUNTIME`). The copy is no op of its own (:data:`BLOCK_PACK`): as BLIS
  does, the matmul packs B one column block at a time (JC panels by all of K, 1 MiB at
  K = 1024) into a buffer of that size, inside its column-block loop and right before every
  row of the thread's part runs over it, so the panels are read back from L2; a whole-B copy
  wrote 4 MiB to memory and read it back (about 7 % of matmul 1024^3); see
  :mod:`block_pack`.

A bias or activation after a panel matmul is then no epilogue group (``fuse_epilogues`` finds
no ``linalg.matmul``). A sum onto C (a bias, a residual) after a matmul against a weight is
C's initial value instead (:mod:`matmul_init`); any other elementwise op reading C, against
a weight, runs on each cache tile of C (:mod:`panel_epilogue`); after a B packed per call it
is an elementwise pass of its own over C.
Measured (2 threads, same process): MLP 32x1024->4096 (GELU)->1024 2.67 ms panels + separate
GELU vs 3.04 ms fused on strided B; linear+GELU 1.27 vs 1.58 ms; encoder block 2.46 vs 2.60.
Matmuls that get no panels (symbolic or fewer than 8 rows, a run-time B with few rows or N not
a multiple of P) keep the fused epilogues of ``matmul_schedule``; a load-time B whose N is not
whole panels is split by columns (:mod:`ragged_panels`).

The generic is correct IR in its own right: anything a schedule leaves of it is plain loops.
:func:`schedule` tiles it to cache tiles, then to ``[MR, 1, P]`` register tiles, drops the
unit panel dim (``fold_unit_extent_dims``), turns the remaining 2-D generic into a
``linalg.matmul`` (``specialize``) and tiles its K by 1: from there it is the plain matmul's
register kernel (16 zmm accumulators held across k, 8 broadcasts and 2 loads per k, with
AVX-512; 12 ymm, 6 broadcasts and 2 loads with AVX2).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from mlir import ir
from mlir.dialects import arith, bufferization, linalg, memref, tensor

from max.compiler.lowering.builders import PARALLEL, REDUCTION, generic, reassociation
from max.compiler.passes.ir_util import as_op
from max.compiler.pipelines import arg_layouts, matmul_schedule, ragged_panels
from max.compiler.pipelines import transform_script as ts
from max.compiler.pipelines.self_copies import identity_layout
from max.runtime import layouts
from max.runtime.layouts import apply_layout, panel_layout

# The register tile: MR rows by one whole panel of NR_PANEL columns (8 x 32 with AVX-512, 6 x
# 16 with AVX2: matmul_schedule.register_shape), and B stored in panels of that width (PANEL).
# AVX2 read half of a 32-wide panel first: each k step's 64 bytes of B every 128 (half the
# lines of the panel slice unused while a register tile ran) gave 1024^3 on a Zen 3 at 78-80
# GF/s on one thread and 153 on two; 16-wide panels 87-89 and 169 (torch 84-89 and 168).
MR = matmul_schedule.MR
PANEL = NR_PANEL = min(layouts.PANEL, matmul_schedule.NR)
PACKED = "mo.pmm"  # on the panel-matmul generic
# On a panel matmul whose run-time copy of B into panels is fused into its column-block loop,
# and on that copy (which is then no op of its own: see block_pack).
BLOCK_PACK = "mo.pmm_pack"
BLOCK_FILL = "mo.pmm_fill"  # on such a matmul whose zero fill of C goes into its row blocks
# Cache tile: MC rows x JC panels, K blocks of KC. A KC x 32 panel slice (32 KiB) stays in L1
# while the rows run; the MC x KC block of A (128 KiB) in L2. Measured at 1024^3 on one core:
# (128, 8, 256) and (256, 8, 256) best, (256, 8, 64) 10% slower.
MC_ROWS, JC, KC = 128, 8, 256
# Symbolic rows (a batch, a sequence): blocks of MC_TILES register tiles, all static but the
# last, whose register tiles are padded (see schedule). Few, because every row of a thread's
# share below a whole block is in that padded remainder, and the padding is per register tile
# and panel: A's rows copied for each. Linear layers against packed weights, rows symbolic,
# 2 threads, AVX2 (Zen 3), GFLOP/s at 96 / 88 / 1024 rows, MC 126 -> 24 (two runs):
# 384 -> 1536 123-134 / 120-126 / 156-172 -> 142-175 / 113-142 / 163-165; 1536 -> 384
# 105-136 / 114-131 / 153-162 -> 160-174 / 117-148 / 154-176; 384 -> 384 100-126 / 99-119 /
# 139-164 -> 137-158 / 112-134 / 158-161 (torch 121-145 at 96 rows). MC 12 was level at
# few rows and slower at 1024 (B streamed from L3 once per block).
MC_TILES = 4
MC = MR * MC_TILES
# The register kernel's k loop unrolled by this: 16 FMAs a k step leave no slack for the loop's
# own uops (ports 0 and 5 run both). Same-process A/B, 2 threads, x torch: 1024^3 (B a graph
# input) 1.08 -> 1.04; unrolled by 8 alike.
K_UNROLL = 4
MIN_ROWS_RUNTIME = 256  # a run-time copy of B (2 K N bytes moved) pays for M rows of reuse
MIN_MACS = 1 << 18
N_SPLIT_ROWS = 64  # up to this many rows, threads split the panels instead of the rows
# Block-packing matmuls (B packed per column block, in L2): 32-row cache tiles (1024^3, 2
# threads, same process: 32 rows 1.068 x torch, 64 1.084, 128 1.088; 12 x 32 or 14 x 32
# register tiles 1.14). With K in blocks of KC, threads split rows from 512 rows each (each
# packs all of B: 2048 x 512 x 512 3.11 ms against 3.37 by columns), else columns (256 x 2048
# x 2048: 7.96 ms by columns, 11.0 by rows). With one K block (KC_WHOLE), columns wherever
# they divide evenly: same process, medians, rows -> columns: 1024^3 5.90 / 6.12 -> 5.78 /
# 5.91 ms, 2048 x 1024 x 1024 12.01 -> 11.65, 1024 x 2048 x 2048 25.50 -> 24.83, 2048 x 512 x
# 512 3.00 -> 2.96, 1024 x 512 x 512 1.52 -> 1.53.
BLOCK_MC = 32
ROW_SPLIT_ROWS = 512
# Block-packing matmuls with K up to this run K as one block, their zero fill of C fused into
# the register tiles (block_pack): the accumulators start at zero in registers, and C is
# written once, never zeroed nor read (K blocks of 256 and a memset per row block before).
# Their column blocks hold at most BLOCK_BYTES of panels (JC panels up to K = 1024, fewer
# above), so that a block and the rows' A stay in L2. Same process, 2 threads, medians:
# 1024^3 6.85 / 6.82 -> 6.61 / 6.61 ms, 512 x 768 x 1024 2.66 -> 2.50, 256 x 2048 x 2048
# 7.89 -> 6.71 (JC 8 at K 2048: 7.77), 512 x 4096 x 512 7.84 -> 6.47, 2048^3 55.8 -> 49.1
# (fastest); K blocks of 512 and 1024 alone were level.
KC_WHOLE = 4096
BLOCK_BYTES = 1 << 20

_DYN = ir.ShapedType.get_dynamic_size()


def eligible(mm: ir.Operation, prepacked: bool = False, ragged: bool = False) -> bool:
    """An f32 2-D matmul of whole panels, large enough. K and N static; M symbolic only for a
    B stored in panels at load time (``prepacked``): no copy per call to pay for. ``ragged``:
    N need not be whole panels (a prepacked B split by :mod:`ragged_panels`). Fewer rows
    than a register tile take a tile of exactly those rows: against a weight (a run-time B
    is packed only for many rows, :data:`MIN_ROWS_RUNTIME`), the panels' contiguous K x P
    slices beat the small-M tiles' reads of B rows N floats apart (one thread, AVX-512:
    4 x 384 x 1536 62.5 -> 50.7 us, 6 rows 94 -> 56, 4 x 1536 x 384 83 -> 59)."""
    ta, tb, tc = (ir.RankedTensorType(v.type) for v in mm.operands[:3])
    if ta.rank != 2 or not tb.has_static_shape or tb.rank != 2:
        return False
    if any(str(t.element_type) != "f32" for t in (ta, tb, tc)):
        return False
    m, (k, n) = ta.shape[0], tb.shape
    if k < 1 or n < PANEL or (n % PANEL and not (ragged and prepacked)):
        return False
    if m == _DYN:
        return prepacked
    return m * n * k >= MIN_MACS


def _rows(a: ir.Value) -> ir.Value | None:
    """A's row count as a value where it is symbolic, else None."""
    if ir.RankedTensorType(a.type).shape[0] != _DYN:
        return None
    return tensor.dim(a, arith.constant(ir.IndexType.get(), 0))


def expand_to(x: ir.Value, shape: list[int], groups: list[list[int]],
              dyn: list[ir.Value] | None = None) -> ir.Value:
    """``x`` expanded to ``shape``; ``dyn``: the sizes of its dynamic dims, in order."""
    t = ir.RankedTensorType.get(shape, ir.RankedTensorType(x.type).element_type)
    return tensor.ExpandShapeOp(t, x, reassociation(groups), dyn or [], shape).result


def collapse_to(x: ir.Value, shape: list[int], groups: list[list[int]]) -> ir.Value:
    """``x`` collapsed to ``shape``."""
    t = ir.RankedTensorType.get(shape, ir.RankedTensorType(x.type).element_type)
    return tensor.collapse_shape(t, x, groups)


def _panels(b: ir.Value, k: int, n: int) -> ir.Value:
    """Bp [n/P, k, P]: a copy of B[k, n] into panels, at each call."""
    j = n // PANEL
    b3 = expand_to(b, [k, j, PANEL], [[0], [1, 2]])
    f32 = ir.F32Type.get()
    empty = tensor.empty([j, k, PANEL], f32)
    read = ir.AffineMap.get(3, 0, [ir.AffineDimExpr.get(1), ir.AffineDimExpr.get(0),
                                   ir.AffineDimExpr.get(2)])
    return generic([b3], [empty], [read, ir.AffineMap.get_identity(3)], [PARALLEL] * 3,
                   lambda x, _: x)[0]


def _prepacked(arg: ir.Value, k: int, n: int) -> ir.Value:
    """Bp [n/P, k, P]: the bytes of a load-time argument stored in panels, read as such."""
    flat = collapse_to(arg, [k * n], [list(range(ir.RankedTensorType(arg.type).rank))])
    return expand_to(flat, [n // PANEL, k, PANEL], [[0, 1, 2]])


def _erase_dead_view(v: ir.Value) -> None:
    """Erases the reshapes of a ``"t"`` view that the panels no longer read."""
    while (op := as_op(v.owner)) is not None and op.name in (
            "tensor.expand_shape", "tensor.collapse_shape") and not list(v.uses):
        v = op.operands[0]
        op.erase()


def _init3(init: ir.Value, m: int, j: int, rows: ir.Value | None) -> ir.Value:
    """C's initial value as [m, j, P]: a fresh fill where C was a fill, else a view.
    ``rows``: the value of a symbolic ``m``."""
    fill = as_op(init.owner)
    if fill is not None and fill.name == "linalg.fill":
        empty = tensor.empty([rows if rows is not None else m, j, PANEL],
                             ir.RankedTensorType(init.type).element_type)
        return linalg.fill(fill.operands[0], outs=[empty])
    if fill is not None and fill.name == "tensor.collapse_shape":  # already [m, j, P]: a
        src = fill.operands[0]  # sum started there (matmul_init)
        if list(ir.RankedTensorType(src.type).shape)[1:] == [j, PANEL]:
            return src
    return expand_to(init, [m, j, PANEL], [[0], [1, 2]], [rows] if rows is not None else None)


def panel_matmul(a: ir.Value, bp: ir.Value, c3: ir.Value) -> ir.Value:
    """``C3[m, j, n] += A[m, k] * Bp[j, k, n]``: the generic tagged :data:`PACKED`."""
    d = [ir.AffineDimExpr.get(i) for i in range(4)]  # (m, j, n, k)
    maps = [ir.AffineMap.get(4, 0, [d[0], d[3]]), ir.AffineMap.get(4, 0, [d[1], d[3], d[2]]),
            ir.AffineMap.get(4, 0, [d[0], d[1], d[2]])]

    def body(x: ir.Value, y: ir.Value, acc: ir.Value) -> ir.Value:
        return arith.addf(acc, arith.mulf(x, y))

    out = generic([a, bp], [c3], maps, [PARALLEL] * 3 + [REDUCTION], body)[0]
    as_op(out.owner).attributes[PACKED] = ir.UnitAttr.get()
    return out


def output_store(result: ir.Value) -> ir.Operation | None:
    """The ``materialize_in_destination`` that stores ``result`` into a row-major output
    memref, when that is its only use (a strided view: None, the copy stays)."""
    uses = list(result.uses)
    store = as_op(uses[0].owner) if len(uses) == 1 else None
    if store is None or store.name != "bufferization.materialize_in_destination":
        return None
    dest = store.operands[1]
    if not isinstance(dest.type, ir.MemRefType) or not identity_layout(ir.MemRefType(dest.type)):
        return None
    return store


def _write_through(result: ir.Value, c3: ir.Value) -> None:
    """Where C is stored into an output memref, store C3 into a [m, j, P] view of it: empty
    tensor elimination stops at reshapes, so C3 would get a buffer of its own and a copy."""
    store = output_store(result)
    if store is None:
        return
    dest = store.operands[1]
    shape = list(ir.RankedTensorType(c3.type).shape)
    t = ir.MemRefType.get(shape, ir.MemRefType(dest.type).element_type)
    with ir.InsertionPoint(store), store.location:
        dyn = ([memref.dim(dest, arith.constant(ir.IndexType.get(), 0))]
               if shape[0] == _DYN else [])
        view = memref.expand_shape(t, dest, reassociation([[0], [1, 2]]), dyn, shape)
        bufferization.MaterializeInDestinationOp(None, c3, view, restrict=True, writable=True)
    store.erase()


def _mark_block_pack(copy: ir.Operation, pmm: ir.Operation) -> None:
    """Marks a panel matmul that packs its run-time B per column block (and zeroes C per
    row block, where C starts as a fill): its copy and fill become no ops of their own."""
    from max.compiler.pipelines.matmul_schedule import FUSED

    unit = ir.UnitAttr.get()
    pmm.attributes[BLOCK_PACK] = unit
    copy.attributes[BLOCK_PACK] = unit
    copy.attributes[FUSED] = unit
    fill = as_op(pmm.operands[2].owner)
    if fill is not None and fill.name == "linalg.fill":
        fill.attributes[FUSED] = unit
        pmm.attributes[BLOCK_FILL] = unit


def rewrite(module: ir.Module, classify: Callable[[ir.Operation], str | None]) -> int:
    """Turns each eligible top-level matmul into a panel matmul; returns how many.

    ``classify``: cpu_schedule's; only what it schedules as ``matmul`` is taken (and no
    matmul already fused into an epilogue group: one carrying ``mo.fused``).
    """
    from max.compiler.pipelines.matmul_schedule import FUSED

    count = 0
    for mm, args in arg_layouts.top_level_ops(module):
        if mm.name != "linalg.matmul" or FUSED in mm.attributes:
            continue
        src = arg_layouts.source(mm.operands[1], args)
        if classify(mm) != "matmul" or not eligible(mm, src is not None, ragged=True):
            continue
        m, (k, n) = (ir.RankedTensorType(mm.operands[0].type).shape[0],
                     ir.RankedTensorType(mm.operands[1].type).shape)
        if src is None and m < MIN_ROWS_RUNTIME:
            continue  # a copy of B per call would cost about what panels save
        ragged = n % PANEL != 0
        if ragged and not ragged_panels.splittable(mm):
            continue
        b = mm.operands[1]
        with ir.InsertionPoint(mm), mm.location:
            rows = _rows(mm.operands[0])
            if ragged:
                c = ragged_panels.split_matmul(mm, src[2], k, n, rows)
            else:
                bp = _panels(b, k, n) if src is None else _prepacked(src[2], k, n)
                c3 = panel_matmul(mm.operands[0], bp,
                                   _init3(mm.operands[2], m, n // PANEL, rows))
                if src is None:
                    _mark_block_pack(as_op(bp.owner), as_op(c3.owner))
                c = collapse_to(c3, [m, n], [[0], [1, 2]])
        old_init = as_op(mm.operands[2].owner)
        if not ragged:
            _write_through(mm.results[0], c3)
        if c is not None:  # (None: a ragged C stored into the output part by part)
            mm.results[0].replace_all_uses_with(c)
        mm.erase()
        if (old_init is not None and old_init.name == "linalg.fill"
                and not list(old_init.results[0].uses)):
            old_init.erase()
        if src is not None:
            key, layout, _ = src
            _erase_dead_view(b)
            arg_layouts.record(module, key, panel_layout(PANEL, layout is not None))
        count += 1
    return count


def pack_constants(module: ir.Module, constants: list[np.ndarray]) -> list[np.ndarray]:
    """``constants`` (the trailing inputs' values) in the layouts the schedule reads them in
    (:mod:`arg_layouts`): what the compile worker stores in ``constants.bin``."""
    _, wanted = arg_layouts.split(module, 0, len(constants))
    return [apply_layout(c, layout) if layout else c for c, layout in zip(constants, wanted,
                                                                          strict=True)]


# ----------------------------------------------------------------------------- schedule

def _fit(size: int, limit: int, step: int) -> int:
    """The largest multiple of ``step`` <= ``limit`` dividing ``size``, else ``limit``; the
    whole ``size`` when it is at most ``limit``."""
    if size <= limit:
        return size
    for t in range(limit - limit % step, step - 1, -step):
        if size % t == 0:
            return t
    return limit


def _row_block(m: int, limit: int) -> int:
    """Rows of a row block of a static ``m``: all of them up to ``limit``; else a multiple of
    MR dividing ``m``; else another divisor of ``m`` above ``limit / 2``, so that every block
    is static (a block's own remainder rows are peeled to a static tile); else ``limit``
    rounded down to whole register tiles. A row block of dynamic size (the last one, where
    the blocks do not divide ``m``) made the block-packing kernel masked and spilling on AVX2
    (1024^3: 6-row tiles in blocks of 30). 1024 rows: blocks of 32 with 8-row tiles, or 32
    (5 tiles of 6 and one of 2) with 6-row tiles."""
    if m <= limit:
        return m
    for t in range(limit - limit % MR, MR - 1, -MR):
        if m % t == 0:
            return t
    for t in range(limit, limit // 2, -1):
        if m % t == 0:
            return t
    return limit - limit % MR


def tiles(op: ir.Operation) -> tuple[tuple[int, ...], ...]:
    """((mc, jc, kc),) of a panel matmul; 0 where the tile covers the whole dim. A matmul
    that packs its own B blocks (:data:`BLOCK_PACK`): ((mc, jc, kc), (1, fill)) with jc never 0
    (``fill``: 1 where it zeroes C per row block, :data:`BLOCK_FILL`)."""
    m, k = ir.RankedTensorType(op.operands[0].type).shape
    j = ir.RankedTensorType(op.operands[1].type).shape[0]
    if BLOCK_PACK in op.attributes:
        mc = _row_block(m, BLOCK_MC)
        if k <= KC_WHOLE:  # one K block; at most BLOCK_BYTES of panels a block
            jc, kc = _fit(j, min(JC, max(1, BLOCK_BYTES // (k * PANEL * 4))), 1), k
        else:
            jc, kc = _fit(j, JC, 1), _fit(k, KC, 16)
        return ((0 if mc == m else mc, jc, 0 if kc == k else kc),
                (1, int(BLOCK_FILL in op.attributes)))
    mc = MC if m == _DYN else _row_block(m, MC_ROWS)
    jc, kc = _fit(j, JC, 1), _fit(k, KC, 16)
    return ((0 if mc == m else mc, 0 if jc == j else jc, 0 if kc == k else kc),)


def thread_plan(op: ir.Operation, threads: int,
                min_macs: int) -> tuple[int, object, int, int] | None:
    """Rows split over threads, or the panels for few rows; the fill of C goes along.

    A matmul that packs its own B blocks (:data:`BLOCK_PACK`) takes its copy of B along too
    (as a list of chains, see ``cpu_threads.parallel_script``): each thread packs the panels
    it reads. Its threads split whole column blocks where these divide evenly (each packs its
    own part of B and reads all of A, which per block is the same traffic as half of A for
    each of twice the blocks), else the rows (each packs all of B); with K in blocks, the rows
    from :data:`ROW_SPLIT_ROWS` rows a thread.
    """
    m, k = ir.RankedTensorType(op.operands[0].type).shape
    j = ir.RankedTensorType(op.operands[1].type).shape[0]
    if m == _DYN:  # symbolic rows (a batch, a sequence): most likely many
        return 4, 2, 0, 0
    if m * j * PANEL * k < min_macs and not matmul_schedule.streams_large_b(k, j * PANEL):
        return None
    if BLOCK_PACK in op.attributes:
        (_, jc, kc), _ = tiles(op)
        # One K block (kc 0): columns wherever they split evenly; K blocks: below
        # ROW_SPLIT_ROWS rows a thread.
        if j % (threads * jc) == 0 and (not kc or m < threads * ROW_SPLIT_ROWS):
            return 4, [(2,), (1,)], 1, j // threads  # whole column blocks per thread
        if m < threads * MR:
            return None
        return 4, [(2,), (1,)], 0, 0
    if m <= N_SPLIT_ROWS and j >= threads:
        return 4, 2, 1, -(-j // threads)
    if m < threads * MR:
        return None
    return 4, 2, 0, 0


def schedule(sid: int, target: str, plan: tuple[tuple[int, ...], ...]) -> str:
    """Transform ops (inside a suppressed sequence) for the panel matmul ``target``."""
    (mc, jc, kc), *pack = plan
    if pack:
        from max.compiler.pipelines.block_pack import schedule as block_schedule

        return block_schedule(sid, target, (mc, jc, kc), bool(pack[0][1]))
    s, op = "", target
    if mc or jc or kc:
        s += ts.tile(op, f"pa{sid}", [mc, jc, 0, kc])
        op = f"%pa{sid}"
    if mc:
        # Rows that MC does not divide (symbolic rows, a batch or a sequence, always): the
        # row blocks peeled, so that every block but the last is static. Blocks of dynamic
        # size made the register kernel masked and spilling: 1024 x 384 x 1536 against a
        # weight, AVX2, two threads, M symbolic: 21.9 ms, now 7.4 (torch 7.4); M static
        # with MC = 126: 15.1 ms, now 7.8. Peeling clones the inner loops: the tiles are found
        # again by a mark (a failed peel, as where MC divides static rows, changes nothing).
        mark = f"mo.prows{sid}"
        s += f'    transform.annotate {op} "{mark}" : {ts.ANY}\n'
        s += ts.peel(ts.loop(f"pa{sid}", 0, sum(1 for t in (mc, jc, kc) if t)), f"ppr{sid}")
        s += (f"    %pr{sid} = transform.structured.match attributes{{{mark}}} in %root : "
              f"({ts.ANY}) -> {ts.ANY}\n")
        # The static blocks get the register tiles. In a remainder block of dynamic rows
        # (symbolic rows, or a thread's uneven share), peeling the register rows leaves
        # their size an affine.min that nothing folds, so its tiles would be masked, C read
        # and written every k step: each of its register tiles is padded to MR rows instead
        # (A's rows copied, C's copied back), a static kernel. (Padding a static tile, as a
        # static remainder block's, changes nothing: its own remainder rows are peeled.)
        s += (f"    %prm{sid}, %prr{sid} = transform.split_handle %pr{sid} "
              f"{{fail_on_payload_too_small = false}} : ({ts.ANY}) -> ({ts.ANY}, {ts.ANY})\n")
        # (A foreach: no remainder where the peel failed, and an empty handle is an error.)
        return (s + register_tiles(sid, f"%prm{sid}")
                + f"    transform.foreach %prr{sid} : {ts.ANY} {{\n"
                f"    ^bb0(%prx{sid}: {ts.ANY}):\n"
                + register_tiles(f"{sid}_", f"%prx{sid}", pad=True)
                + "    }\n")
    return s + register_tiles(sid, op)


def register_tiles(sid: int | str, op: str, fill: bool = False, pad: bool = False) -> str:
    """Register tiles [MR, 1, NR_PANEL] of the cache tile ``op``, then K by 1 (see the module doc),
    that k loop unrolled by :data:`K_UNROLL`. ``fill``: the zero fill of ``op``'s C is fused
    into each register tile (``structured.fuse`` follows the destination to it). ``pad``: each
    register tile of dynamic rows padded to MR rows (see :func:`schedule`)."""
    # Panel outer, rows inner: the panel's K x NR_PANEL slice stays in L1 over all the rows.
    if fill:
        s = (f"    %pb{sid}, %pb{sid}l:3 = transform.structured.fuse {op} tile_sizes "
             f"[{MR}, 1, {NR_PANEL}, 0] interchange [1, 0, 2, 3] : ({ts.ANY}) -> "
             f"({ts.ANY}, {ts.ANY}, {ts.ANY}, {ts.ANY})\n")
    else:
        s = ts.tile(op, f"pb{sid}", [MR, 1, NR_PANEL, 0]).replace(
            f" : ({ts.ANY})", f" interchange = [1, 0, 2, 3] : ({ts.ANY})", 1)
    s += ts.peel(f"%pb{sid}l#1", f"ppm{sid}")  # rows not a multiple of MR: a static remainder
    # The unit panel dim dropped (rank-reducing slices): a 2-D matmul-shaped generic.
    s += (f"    transform.apply_patterns to %pb{sid}l#0 {{\n"
          f"      transform.apply_patterns.linalg.fold_unit_extent_dims_via_reshapes\n"
          f"    }} : {ts.ANY}\n"
          f"    %pg{sid} = transform.structured.match ops{{[\"linalg.generic\"]}} in %pb{sid}l#0"
          f" : ({ts.ANY}) -> {ts.ANY}\n"
          f"    %pm{sid} = transform.structured.specialize %pg{sid} : ({ts.ANY}) -> {ts.ANY}\n")
    if pad:
        s += ts.pad(f"%pm{sid}", f"pmp{sid}", [0])
    if fill:
        # Vectorized here, on tensors, once canonicalization made it a fill of the
        # 2-D tile: the matmul's read of C then folds to the zero vector. (A tag would not
        # survive: the canonicalizer re-creates the fill.) Masked where a remainder is smaller.
        s += (f"    transform.apply_patterns to %pb{sid}l#0 {{\n"
              f"      transform.apply_patterns.canonicalization\n"
              f"    }} : {ts.ANY}\n"
              f"    %pbf{sid} = transform.structured.match ops{{[\"linalg.fill\"]}} in "
              f"%pb{sid}l#0 : ({ts.ANY}) -> {ts.ANY}\n"
              f"    transform.structured.vectorize %pbf{sid} vector_sizes [{MR}, {NR_PANEL}] : "
              f"{ts.ANY}\n")
    s += ts.tile(f"%pmp{sid}" if pad else f"%pm{sid}", f"pk{sid}", [0, 0, 1]) + ts.done(f"%pk{sid}")
    # The k loop unrolled: fewer loop-counter and pointer uops between the FMAs (ports 0 and
    # 5 run both); a trip count not a multiple of it gets an epilogue loop.
    if K_UNROLL > 1:
        s += f"    transform.loop.unroll %pk{sid}l {{factor = {K_UNROLL}}} : {ts.ANY}\n"
    return s


__all__ = ["BLOCK_FILL", "BLOCK_PACK", "PACKED", "collapse_to", "eligible", "expand_to",
           "output_store", "pack_constants", "panel_matmul", "register_tiles", "rewrite",
           "schedule", "thread_plan", "tiles"]

