"""Matmul schedules: tiles chosen by shape, threads split by shape, fused epilogues.

Hooks (see :mod:`cpu_schedule` and :mod:`cpu_threads`):

* :func:`fuse_epilogues`, before tagging: an elementwise ``linalg.generic`` that consumes a 2-D
  ``linalg.matmul`` (directly, or through the ``tensor.reshape`` that puts back the rows the
  lowering collapsed: ``x[b, s, h] @ w + bias``) becomes one *epilogue group*. The generic is
  rewritten to 2-D over the matmul's rows where needed, tagged ``epilogue``, and its matmul and
  the matmul's zero fill are left untagged: the epilogue's schedule pulls them into its tiles
  (``fuse_into_containing_op`` fuses producers, so the consumer is tiled), and each 8x32
  accumulator runs through the bias/activation in registers before its one store.
* :func:`tiles`: the cache and register tiles of a matmul of this shape. Rows fewer than a
  register tile (decode-style ``[1..7, K] @ [K, N]``) get a register tile of exactly that many
  rows, wider in N, instead of a masked 8-row tile that computes mostly padding.
* :func:`thread_plan`: few rows (<= :data:`N_SPLIT_ROWS`) are split over threads by columns:
  each thread then reads half of B (the weights, the bulk of the traffic) and not all of it.
* :func:`fuse_bmm_fills`: a batch matmul (attention) with one K block gets its zero fill in
  its register tiles: each accumulator starts as a zero vector, C is written once.
* :data:`VSIZES`: the vector sizes that bound every remainder tile of a tagged op, kept on
  the op (tiling clones keep attributes) for the masked vectorization after bufferization.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import tensor

from max.compiler.host_cpu import CpuDescription, host
from max.compiler.passes.ir_util import as_op
from max.compiler.pipelines import transform_script as ts

MC, NC, KC = 256, 256, 64  # cache tile of a plain matmul (MLIR-FACTS 1)


def register_shape(cpu: CpuDescription) -> tuple[int, int]:
    """(MR, NR): the register tile of a matmul on ``cpu``. Two vectors of columns, by as many
    rows (at most 8) as leave three registers for B's two vectors and A's broadcast: 8 x 32
    (16 zmm accumulators) with AVX-512, 6 x 16 (12 ymm) with AVX2, where 8 x 32 spilled on
    every k step (matmul 1024^3, one thread on Zen 3: 33 GF/s against 57)."""
    return min(8, (cpu.vector_registers - 3) // 2), 2 * cpu.f32_lanes


def small_m_widths(cpu: CpuDescription, mr: int) -> dict[int, int]:
    """Static row counts below MR: a tile of exactly those rows, N widened to keep about 8
    accumulators in flight (FMA latency 4 x 2 ports), at least two vectors. Powers of two
    only: vector<48> legalizes to scalars. AVX-512: 1 -> 128, 2 -> 64, 3..7 -> 32."""
    widths = {}
    for m in range(1, mr):
        vectors = 2
        while vectors * 2 * m <= 8:
            vectors *= 2
        widths[m] = vectors * cpu.f32_lanes
    return widths


MR, NR = register_shape(host())
SMALL_M_NR = small_m_widths(host(), MR)
N_SPLIT_ROWS = 64  # up to this many static rows, threads split N (columns) instead of rows
B_SPLIT_BYTES = 1 << 20  # a B this large splits over threads whatever the rows (few rows)
B_BLOCK_BYTES = 512 * 1024  # K x NC panel of B an epilogue's cache tile keeps in L2

LEVEL = "cache"  # where the epilogue meets the matmul: "cache" (C block) or "register"
EPI_MC = 64  # rows of an epilogue's cache tile: a 64 x 256 C block is 64 KiB
VSIZES = "mo.vsizes"  # i64 array: masked vector sizes bounding each remainder tile
EPILOGUE = "mo.epi"  # on an epilogue generic: the operand index of its matmul
# On the matmul and fill of an epilogue group, and a batch matmul's fill (fuse_bmm_fills): not
# tagged by themselves.
FUSED = "mo.fused"

# A batch matmul's register k loop unrolled by this (as matmul_pack.K_UNROLL).
BMM_K_UNROLL = 4
# A batch matmul with a static K up to this runs K as one block, its zero fill fused into the
# register tiles (fuse_bmm_fills): the K x 32 slice of B (32 KiB) still stays in L1.
BMM_KC = 256

_DYN = ir.ShapedType.get_dynamic_size()
Tiles = tuple[tuple[int, int, int], tuple[int, int, int]]


# ----------------------------------------------------------------------------- shapes

def _mnk(mm: ir.Operation) -> tuple[int, int, int]:
    """(m, n, k) of a matmul or batch matmul."""
    a, b = (ir.RankedTensorType(v.type) for v in list(mm.operands)[:2])
    return a.shape[-2], b.shape[-1], a.shape[-1]


def _fit(size: int, limit: int, step: int) -> int:
    """A tile <= ``limit``: the largest multiple of ``step`` dividing a static ``size`` (so the
    cache loop leaves no remainder tile), else ``limit``."""
    if size != _DYN and size <= limit:
        return max(size, 1)
    if size != _DYN:
        for t in range(limit - limit % step, 2 * step - 1, -step):
            if size % t == 0:
                return t
    return limit


def register_tile(m: int) -> tuple[int, int]:
    """(MR, NR) for ``m`` rows (dynamic: the full MR x NR tile)."""
    if m != _DYN and 0 < m < MR:
        return m, SMALL_M_NR[m]
    return MR, NR


def tiles(mm: ir.Operation) -> Tiles:
    """Cache tile [MC, NC, KC] and register tile [MR, NR, 1] of a 2-D ``linalg.matmul``."""
    m, n, k = _mnk(mm)
    mr, nr = register_tile(m)
    return (_fit(m, MC, mr), _fit(n, NC, nr), _fit(k, KC, 16)), (mr, nr, 1)


def _epilogue_tiles(mm: ir.Operation) -> Tiles:
    """Cache tile [MC, NC, 0]: K is not blocked (the accumulator lives across all of K, then
    meets the epilogue); NC keeps the K x NC panel of B within :data:`B_BLOCK_BYTES`."""
    m, n, k = _mnk(mm)
    mr, nr = register_tile(m)
    nc = NC
    while k != _DYN and nc > nr and k * nc * 4 > B_BLOCK_BYTES:
        nc //= 2
    kc = 0
    if LEVEL == "cache":  # a C block that stays in L2 between the matmul and the epilogue
        nc, kc = NC, _fit(k, KC, 16)
    mc, nc = _fit(m, EPI_MC if LEVEL == "cache" else MC, mr), _fit(n, max(nc, nr), nr)
    # 0: a cache tile that covers its whole static dim is no loop (and no fusion level).
    return (0 if mc == m else mc, 0 if nc == n else nc, 0 if kc == k else kc), (mr, nr, 1)


def _set_vsizes(op: ir.Operation, sizes: list[int]) -> None:
    op.attributes[VSIZES] = ir.DenseI64ArrayAttr.get(sizes)


def vector_sizes(op: ir.Operation) -> list[int] | None:
    """The masked vector sizes recorded on ``op`` (or a tiled clone of it), or None."""
    if VSIZES not in op.attributes:
        return None
    return list(ir.DenseI64ArrayAttr(op.attributes[VSIZES]))


def mark_matmul(mm: ir.Operation) -> Tiles | tuple[tuple[int, int, int], tuple[int, int, int],
                                                    tuple[int]]:
    """Tiles of a plain tagged matmul; records its register tile as its vector sizes. With
    symbolic columns a third element, ``(half,)``: the width by which the register tiles'
    column remainder is split again (:func:`column_remainder_halves`)."""
    t = tiles(mm)
    _set_vsizes(mm, list(t[1]))
    nr = t[1][1]
    if _mnk(mm)[1] == _DYN and nr >= 16 and nr % 2 == 0:
        return (*t, (nr // 2,))
    return t


def column_remainder_halves(sid: int, op: str, mr: int, nr: int, half: int) -> str:
    """Register tiles of a matmul with symbolic columns, whose column remainder is split again
    by ``half``: ``op`` tiled by rows and columns (``[mr, nr]``), the column loop peeled, its
    remainder tiled by ``half`` columns and peeled, masked vectors ``half`` wide there
    (:data:`VSIZES`), then every piece tiled by K (1) and the row loop peeled.

    The remainder of a symbolic N (fewer than NR columns, known at run time) was one masked
    tile NR wide, as costly as a full one whatever its width: ``[32, 576] @ [576, n]`` at n =
    33 took 26.9 us against 16.5 with n static, n = 48 26.8 against 18.3. Now a remainder up
    to ``half`` wide is one masked tile of ``half``, a wider one a full ``half`` and a masked
    one. K is tiled last so that each piece's K loop is innermost (its accumulators stay in
    registers across K). The same shape, one process, fastest of 8 blocks, 1 thread, n = 12 /
    33 / 100: 16.3 -> 9.7, 27.1 -> 20.5, 48.3 -> 41.5 us; n = 17 and 128 level. (The batch
    matmuls of attention pad their remainder tiles instead, see :func:`bmm_register_tiles`;
    split the same way, a remainder of 17 columns became two padded half tiles, 1.4x slower
    than one full tile, for 0.75-0.88x at 12, 33 and 100.)"""
    b = f"b{sid}"
    s = ts.tile(op, b, [mr, nr, 0]) + ts.done(f"%{b}")
    s += ts.suppress(
        ts.peel_lines(f"%{b}l#1", f"pn{sid}")
        + f'    %pn{sid}m = transform.structured.match ops{{["linalg.matmul"]}} in %pn{sid}b : '
        f"({ts.ANY}) -> {ts.ANY}\n"
        + ts.tile(f"%pn{sid}m", f"ph{sid}", [0, half, 0])
        + f"    %ph{sid}v = transform.param.constant array<i64: {mr}, {half}, 1> -> "
        f"!transform.any_param\n"
        f'    transform.annotate %ph{sid} "{VSIZES}" = %ph{sid}v : {ts.ANY}, '
        f"!transform.any_param\n"
        + ts.peel_lines(f"%ph{sid}l", f"ph{sid}"))
    s += ts.suppress(
        f'    %pk{sid}m = transform.structured.match ops{{["linalg.matmul"]}} in %{b}l#0 : '
        f"({ts.ANY}) -> {ts.ANY}\n"
        f"    transform.foreach %pk{sid}m : {ts.ANY} {{\n"
        f"    ^bb0(%pk{sid}o: {ts.ANY}):\n"
        + ts.tile(f"%pk{sid}o", f"pk{sid}", [0, 0, 1])
        + "    }\n")
    # The rows last: peeling them clones the column loops.
    return s + ts.peel(f"%{b}l#0", f"pm{sid}")


def classify_bmm(op: ir.Operation) -> str | None:
    """``bmm`` for an f32 ``linalg.batch_matmul`` on rank-3 tensors (attention), else None."""
    ts = [ir.RankedTensorType(v.type) for v in op.operands]
    if all(t.rank == 3 and str(t.element_type) == "f32" for t in ts):
        return "bmm"
    return None


def mark_bmm(op: ir.Operation) -> tuple[tuple[int, ...], ...]:
    """Tiles of a batch matmul: one batch element per cache tile, then the matmul's tiles
    (no register loop over the batch: it is 1 already). Records its vector sizes. A cache
    tile K of 0: one K block, the fill fused (see :func:`bmm_fill_schedule`)."""
    m, n, k = _mnk(op)
    mr, nr = register_tile(m)
    _set_vsizes(op, [1, mr, nr, 1])
    # Rows or columns of symbolic size (attention over a symbolic sequence): the remainder
    # register tiles padded to full ones (see bmm_register_tiles).
    pad = tuple(d for d, size in ((1, m), (2, n)) if size == _DYN)
    fill = as_op(op.operands[2].owner)
    if fill is not None and FUSED in fill.attributes:  # see fuse_bmm_fills
        _set_vsizes(fill, [1, mr, nr])
        return (1, _fit(m, MC, mr), _fit(n, NC, nr), 0), (0, mr, nr, 1), pad
    return (1, _fit(m, MC, mr), _fit(n, NC, nr), _fit(k, KC, 16)), (0, mr, nr, 1), pad


def _function_ops(module: ir.Module) -> list[ir.Operation]:
    """The ops directly in the blocks of the module's functions, in order (a list: callers
    rewrite as they go)."""
    return [child.operation for fn in module.body.operations
            if fn.operation.name == "func.func"
            for block in fn.operation.regions[0].blocks for child in block.operations]


def fuse_bmm_fills(module: ir.Module, classify) -> int:
    """Marks the zero fill of each batch matmul with one K block (static K <= :data:`BMM_KC`)
    :data:`FUSED`: not tagged by itself, :func:`bmm_fill_schedule` puts it into the matmul's
    register tiles. Returns how many."""
    count = 0
    for op in _function_ops(module):
        if op.name != "linalg.batch_matmul" or classify(op) != "bmm":
            continue
        k = _mnk(op)[2]
        fill = as_op(op.operands[2].owner)
        shape = ir.RankedTensorType(op.results[0].type).shape
        if (k == _DYN or k > BMM_KC or 0 in (k, *shape) or fill is None
                or fill.name != "linalg.fill" or not used_only_by(fill.results[0], op)):
            continue
        fill.attributes[FUSED] = ir.UnitAttr.get()
        count += 1
    return count


def bmm_fill_schedule(sid: int, op: str, plan: tuple[tuple[int, ...], ...]) -> str:
    """Transform ops for a batch matmul with one K block: cache then register tiles of
    (batch, m, n), its zero fill fused into each (``structured.fuse`` follows the loop's
    destination to the fill), so each accumulator starts at zero in registers instead of
    being loaded from a C zeroed by a pass of its own; then K by 1, unrolled."""
    cache, (_, mr, nr, _), pad = plan
    n_outer = sum(1 for t in cache if t)
    s = (f"    %fa{sid}, %fa{sid}l:{n_outer} = transform.structured.fuse {op} tile_sizes "
         f"{list(cache)} : ({ts.ANY}) -> ({ts.ANY}{(', ' + ts.ANY) * n_outer})\n")
    s += (f"    %b{sid}, %b{sid}l:2 = transform.structured.fuse %fa{sid} tile_sizes "
          f"[0, {mr}, {nr}, 0] : ({ts.ANY}) -> ({ts.ANY}, {ts.ANY}, {ts.ANY})\n")
    s += (f"    %bf{sid} = transform.get_producer_of_operand %b{sid}[2] : ({ts.ANY}) -> {ts.ANY}\n")
    s += ts.done(f"%bf{sid}")
    return s + bmm_register_tiles(sid, f"%b{sid}", f"%b{sid}l", pad, (mr, nr))


# On the remainder loops of padded batch matmuls. One name for every op, not one per op: it
# stays on the loops, and mo-outline-kernels merges only kernels that print the same (a tag
# per op kept each layer's attention kernels apart). The matches below find the op's own
# tiles by their per-op mark inside the loops so tagged.
REMAINDER_LOOP = "mo.bmm_remainder"


def bmm_register_tiles(sid: int, tile: str, loops: str, pad: tuple[int, ...],
                       full: tuple[int, int]) -> str:
    """K by 1 and unrolled in the register tile ``tile`` of a batch matmul, whose m and n
    loops are ``{loops}#0`` and ``#1``; those loops peeled, so that all but the last tile of
    each are static. With ``pad`` (the symbolic dims among m and n) the peel comes first and
    the remainder tiles are padded to full ones: left of dynamic size they were vectorized
    with masks, C read and written at every k step (AVX2 has no mask registers: [96, s, 64] @
    [96, 64, s] at s = 128 took 2.8 ms, 1.3 with s static). The peel does fold the size of
    the full tiles here (the loop bound is the tile's own size), so only the tiles of the
    remainder loops (tagged by the peels) are padded and pay for copies. ``full``: (mr, nr),
    the sizes padded to (a remainder's bound is one less: vectors of 5 x 15 lanes)."""
    # n first: peeling m clones the n loop, which would invalidate its handle.
    rest = REMAINDER_LOOP if pad else ""
    peels = ts.peel(f"{loops}#1", f"pn{sid}", rest) + ts.peel(f"{loops}#0", f"pm{sid}", rest)
    s = ""
    if pad:
        # Only the tiles in a remainder loop are padded: a full tile padded kept a copy of
        # C through a scratch tile and back (the pad's copy back), 24 stores a tile. The
        # attention at 128 tokens ([96, s, 32] @ [96, 32, s], then [96, s, s] @ [96, s, 32]),
        # alternating processes: q @ k^T 998-1236 -> 943-1164 us, p @ v 952-1154 -> 771-890.
        mark = f"mo.bmmt{sid}"
        s += f'    transform.annotate {tile} "{mark}" : {ts.ANY}\n' + peels
        s += (f"    %br{sid} = transform.structured.match attributes{{{rest}}} in %root : "
              f"({ts.ANY}) -> {ts.ANY}\n"
              f"    %bq{sid} = transform.foreach %br{sid} : {ts.ANY} -> {ts.ANY} {{\n"
              f"    ^bb0(%bl{sid}: {ts.ANY}):\n"
              f"      %bm{sid} = transform.structured.match attributes{{{mark}}} in %bl{sid} : "
              f"({ts.ANY}) -> {ts.ANY}\n"
              f"      transform.yield %bm{sid} : {ts.ANY}\n"
              f"    }}\n"
              # A tile in the n remainder of the m remainder is in two tagged loops.
              f"    %bt{sid} = transform.merge_handles %bq{sid} {{deduplicate}} : {ts.ANY}\n"
              + ts.pad(f"%bt{sid}", f"bp{sid}", list(pad), [full[d - 1] for d in pad])
              + f"    %ba{sid} = transform.structured.match attributes{{{mark}}} in %root : "
              f"({ts.ANY}) -> {ts.ANY}\n")
        tile = f"%ba{sid}"
    s += ts.tile(tile, f"bk{sid}", [0, 0, 0, 1]) + ts.done(f"%bk{sid}")
    if BMM_K_UNROLL > 1:
        s += f"    transform.loop.unroll %bk{sid}l {{factor = {BMM_K_UNROLL}}} : {ts.ANY}\n"
    return s if pad else s + peels


# ----------------------------------------------------------------------------- threads

Plan = tuple[int, "int | tuple[int, ...] | None", int, int]


def streams_large_b(k: int, n: int) -> bool:
    """Whether a few-row f32 matmul's time is streaming its K x N B, enough to pay for a
    fork/join whatever its multiply-add count: a B of 1 MiB takes about 25 us on one core."""
    return k * n * 4 >= B_SPLIT_BYTES


def _worth_it(m: int, n: int, k: int, min_macs: int, min_rows: int, threads: int) -> bool:
    if 0 in (m, n, k):
        return False  # nothing to split (and tiling a static 0 beside a dynamic dim aborts)
    if n == _DYN or k == _DYN:
        return True  # unknown: the batch of a large layer, most likely
    if m == _DYN:
        return n * k >= min_macs // 64
    if m < min_rows:
        # Too few rows to split: split the columns, if each thread gets whole register tiles.
        return (m * n * k >= min_macs or streams_large_b(k, n)) and n >= threads * NR
    return m * n * k >= min_macs


def thread_plan(op: ir.Operation, kind: str, threads: int, min_macs: int,
                min_rows: int) -> Plan | None:
    """How a tagged matmul (or epilogue generic) goes on ``threads`` threads, or None.

    Many rows: ``threads`` equal parts of M. Few static rows: parts of N, a multiple of the
    register tile NR wide, so only the last part has a remainder.
    """
    if kind == "bmm":  # one batch element per part: attention heads split over threads
        batch = ir.RankedTensorType(op.operands[0].type).shape[0]
        m, n, k = _mnk(op)
        if 0 in (batch, m, n, k) or (batch != _DYN and batch < threads):
            return None
        macs = (batch if batch != _DYN else threads) * m * n * k
        if _DYN in (m, n, k) or macs >= min_macs:
            return 4, 2, 0, 0
        return None
    if kind == "epilogue":
        p = ir.IntegerAttr(op.attributes[EPILOGUE]).value
        mm = as_op(op.operands[p].owner)
        loops, fuse = 2, (p, 2)  # the matmul, then its fill, into each thread's part
    else:
        mm, loops, fuse = op, 3, 2
    m, n, k = _mnk(mm)
    if not _worth_it(m, n, k, min_macs, min_rows, threads):
        return None
    if m != _DYN and (m <= N_SPLIT_ROWS or m < min_rows) and n != _DYN and n >= threads * NR:
        part = -(-n // threads)
        return loops, fuse, 1, -(-part // NR) * NR
    return loops, fuse, 0, 0


# ----------------------------------------------------------------------------- epilogues

def used_only_by(v: ir.Value, op: ir.Operation) -> bool:
    """Whether ``op`` is the one user of ``v`` (one use)."""
    uses = list(v.uses)
    owner = as_op(uses[0].owner) if len(uses) == 1 else None
    return owner is not None and owner == as_op(op)


def _is_f32_matmul(op: ir.Operation) -> bool:
    if op.name != "linalg.matmul" or len(op.results) != 1:
        return False
    ts = [ir.RankedTensorType(v.type) for v in op.operands]
    return all(t.rank == 2 and str(t.element_type) == "f32" for t in ts)


def matmul_operand(g: ir.Operation, maps: list[ir.AffineMap]) -> tuple[int, ir.Operation] | None:
    """(operand index, matmul) of an elementwise generic reading a matmul's whole result."""
    rank = len(maps[-1].results) if maps else 0  # the output's: an input may be a broadcast
    for i, v in enumerate(list(g.operands)[:-1]):
        if maps[i] != ir.AffineMap.get_identity(rank):
            continue
        owner = as_op(v.owner)
        if owner is None:
            continue
        if rank > 2:
            # The row collapse put back: tensor.reshape(matmul [rows, n]) -> [*lead, n].
            if owner.name != "tensor.reshape" or not used_only_by(owner.results[0], g):
                continue
            src = as_op(owner.operands[0].owner)
            n_out = ir.RankedTensorType(v.type).shape[-1]
            if src is None or not _is_f32_matmul(src):
                continue
            if ir.RankedTensorType(src.results[0].type).shape[1] != n_out:
                continue
            if not used_only_by(src.results[0], owner):
                continue
            return i, src
        if _is_f32_matmul(owner) and used_only_by(owner.results[0], g):
            return i, owner
    return None


def _flat_map(m: ir.AffineMap, rank: int) -> ir.AffineMap | None:
    """``m`` over 2 loops (rows, n) where it reads only the last loop and constants."""
    exprs = []
    for e in m.results:
        if isinstance(e, ir.AffineConstantExpr):
            exprs.append(e)
        elif isinstance(e, ir.AffineDimExpr) and ir.AffineDimExpr(e).position == rank - 1:
            exprs.append(ir.AffineDimExpr.get(1))
        else:
            return None
    return ir.AffineMap.get(2, 0, exprs)


def body_reads_output_or_index(g: ir.Operation) -> bool:
    """Whether the body of the generic ``g`` reads its output's value or a loop index."""
    block = g.regions[0].blocks[0]
    if len(list(block.arguments[len(block.arguments) - 1].uses)):
        return True
    return any(op.operation.name == "linalg.index" for op in block.operations)


def _flatten(g: ir.Operation, p: int, mm: ir.Operation, maps: list[ir.AffineMap]) -> bool:
    """Rewrites the rank-r epilogue ``g`` to 2-D over the matmul's [rows, n]; False if it can't."""
    rank = len(maps[-1].results)
    ins = list(g.operands)[:-1]
    new_maps: list[ir.AffineMap | None] = []
    for i, v in enumerate(ins):
        if i == p or maps[i] == ir.AffineMap.get_identity(rank):
            new_maps.append(None)  # identity: viewed as [rows, n]
        else:
            fm = _flat_map(maps[i], rank)
            if fm is None:
                return False
            new_maps.append(fm)
    reshape = as_op(g.operands[p].owner)
    out_t = ir.RankedTensorType(g.results[0].type)
    mm_t = ir.RankedTensorType(mm.results[0].type)
    with ir.InsertionPoint(g):
        sizes = [mm_t.shape[d] if mm_t.shape[d] != _DYN else tensor.dim(mm.results[0], _idx(d))
                 for d in range(2)]
        shape2 = tensor.from_elements(ir.RankedTensorType.get([2], ir.IndexType.get()),
                                      [s if isinstance(s, ir.Value) else _idx(s) for s in sizes])
        for i, v in enumerate(ins):
            if i == p:
                g.operands[i] = mm.results[0]
            elif new_maps[i] is None:
                et = ir.RankedTensorType(v.type).element_type
                g.operands[i] = tensor.reshape(ir.RankedTensorType.get(mm_t.shape, et), v, shape2)
        g.operands[len(ins)] = tensor.empty(sizes, out_t.element_type)
    ident = ir.AffineMap.get_identity(2)
    g.attributes["indexing_maps"] = ir.ArrayAttr.get(
        [ir.AffineMapAttr.get(m or ident) for m in new_maps] + [ir.AffineMapAttr.get(ident)])
    g.attributes["iterator_types"] = ir.ArrayAttr.get(
        list(ir.ArrayAttr(g.attributes["iterator_types"]))[:2])
    result = g.results[0]
    result.set_type(ir.RankedTensorType.get(mm_t.shape, out_t.element_type))
    with ir.InsertionPoint.after(g):
        back = tensor.reshape(out_t, result, reshape.operands[1])
    result.replace_all_uses_except(back, back.owner.operation)
    reshape.operation.erase()
    return True


def _idx(i: int) -> ir.Value:
    from mlir.dialects import arith

    return arith.constant(ir.IndexType.get(), i)


def fuse_epilogues(module: ir.Module, classify) -> int:
    """Forms the epilogue groups of every function (see the module doc); returns how many."""
    count = 0
    for g in _function_ops(module):
        if g.name != "linalg.generic" or classify(g) != "elementwise":
            continue
        if len(g.results) != 1 or body_reads_output_or_index(g):
            continue
        maps = [ir.AffineMapAttr(a).value
                for a in ir.ArrayAttr(g.attributes["indexing_maps"])]
        found = matmul_operand(g, maps)
        if found is None or classify(found[1]) != "matmul":
            continue
        p, mm = found
        fill = as_op(mm.operands[2].owner)
        if (fill is None or fill.name != "linalg.fill"
                or not used_only_by(fill.results[0], mm)):
            continue
        if len(maps[-1].results) > 2:
            with g.location:
                if not _flatten(g, p, mm, maps):
                    continue
        cache, reg = _epilogue_tiles(mm)
        g.attributes[EPILOGUE] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), p)
        for op in (mm, fill):
            op.attributes[FUSED] = ir.UnitAttr.get()
        _set_vsizes(g, list(reg[:2]))
        _set_vsizes(fill, list(reg[:2]))
        _set_vsizes(mm, list(reg))
        count += 1
    return count


def epilogue_tiles(g: ir.Operation) -> tuple[tuple[int, ...], ...]:
    """(cache tile, register tile, (matmul operand index,)) of an epilogue generic."""
    p = ir.IntegerAttr(g.attributes[EPILOGUE]).value
    return (*_epilogue_tiles(g.operands[p].owner), (p,))


def epilogue_schedule(sid: int, g: str, plan: tuple[tuple[int, ...], ...]) -> str:
    """Transform ops (inside a suppressed sequence) for the epilogue group of generic ``g``.

    The generic is tiled to cache tiles and then to register tiles, the matmul and its fill
    pulled into each level; the fused matmul's K is tiled by 1 (the accumulator is hoisted
    into registers later), and the register loops are peeled (n first: peeling m clones it).
    """
    (mc, nc, kc), (mr, nr, _), (p,) = plan
    s = (f"    %em{sid} = transform.get_producer_of_operand {g}[{p}] : ({ts.ANY}) -> {ts.ANY}\n"
         f"    %ef{sid} = transform.get_producer_of_operand %em{sid}[2] : ({ts.ANY}) -> {ts.ANY}\n")
    loops = (mc > 0) + (nc > 0)
    if loops:  # cache tiles, the matmul and fill pulled into the innermost of their loops
        s += ts.tile(g, f"ea{sid}", [mc, nc])
        s += _fuse(f"%em{sid}", ts.loop(f"ea{sid}", loops - 1, loops), f"em1{sid}")
        s += _fuse(f"%ef{sid}", ts.loop(f"ea{sid}", loops - 1, loops), f"ef1{sid}")
        g = f"%ea{sid}"
    else:
        s += f"    %em1{sid} = transform.merge_handles %em{sid} : {ts.ANY}\n"
        s += f"    %ef1{sid} = transform.merge_handles %ef{sid} : {ts.ANY}\n"
    if LEVEL == "cache":
        return s + _cache_level(sid, g, (mr, nr), kc)
    s += ts.tile(g, f"eb{sid}", [mr, nr])
    s += _fuse(f"%em1{sid}", f"%eb{sid}l#1", f"em2{sid}")
    s += _fuse(f"%ef1{sid}", f"%eb{sid}l#1", f"ef2{sid}")
    s += ts.tile(f"%em2{sid}", f"ek{sid}", [0, 0, 1])
    s += ts.done(f"%eb{sid}") + ts.done(f"%ek{sid}") + ts.done(f"%ef2{sid}")
    s += ts.peel(f"%eb{sid}l#1", f"epn{sid}") + ts.peel(f"%eb{sid}l#0", f"epm{sid}")
    return s


def _cache_level(sid: int, g: str, reg: tuple[int, int], kc: int) -> str:
    """Matmul, fill and epilogue each register-tiled inside the shared cache tile: the
    matmul keeps its K blocks, the epilogue reads the C block from cache, not memory."""
    mr, nr = reg
    s = ts.tile(f"%em1{sid}", f"ck{sid}", [0, 0, kc]) if kc else ""
    mm = f"%ck{sid}" if kc else f"%em1{sid}"
    s += ts.tile(mm, f"cm{sid}", [mr, nr, 1]) + ts.done(f"%cm{sid}")
    s += ts.tile(f"%ef1{sid}", f"cf{sid}", [mr, nr]) + ts.done(f"%cf{sid}")
    s += ts.tile(g, f"cg{sid}", [mr, nr]) + ts.done(f"%cg{sid}")
    for name in ("cm", "cf", "cg"):
        s += (ts.peel(f"%{name}{sid}l#1", f"p{name}n{sid}")
              + ts.peel(f"%{name}{sid}l#0", f"p{name}m{sid}"))
    return s


def _fuse(producer: str, loop: str, name: str) -> str:
    any_ = "!transform.any_op"
    return (f"    %{name}, %{name}c = transform.structured.fuse_into_containing_op {producer} "
            f"into {loop} : ({any_}, {any_}) -> ({any_}, {any_})\n")


__all__ = ["BMM_KC", "BMM_K_UNROLL", "EPILOGUE", "FUSED", "VSIZES", "bmm_fill_schedule",
           "bmm_register_tiles", "body_reads_output_or_index", "classify_bmm",
           "column_remainder_halves",
           "epilogue_schedule", "epilogue_tiles", "fuse_bmm_fills", "fuse_epilogues",
           "mark_bmm", "mark_matmul", "matmul_operand", "register_tile", "streams_large_b",
           "thread_plan", "tiles", "used_only_by", "vector_sizes"]
