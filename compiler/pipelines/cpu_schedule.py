"""Transform-dialect schedules for the CPU pipeline: tile, peel and vectorize linalg ops.

Three stages, around bufferization (see :func:`max.compiler.pipelines.cpu.lower_to_llvm`):

1. :func:`schedule_tensors`, on tensors after fusion. Each op that a schedule knows gets a tag
   (``mo.sid``); one transform script tiles it (matmul: cache tiles, then an 8x32x1 register
   tile; elementwise: ``[1, .., 1, 64]``; last-axis reductions: rows of 1, then
   ``tile_reduction_using_for`` with 64 partial sums) and peels the register-tile loops, so
   that every full tile has static sizes. The static tiles are vectorized here, unmasked, and
   ``loop-invariant-subset-hoisting`` keeps the matmul accumulator in registers across k.
2. and 3. :func:`memref_vectorize.vectorize_memrefs`, after bufferization: what peeling left
   over (remainder tiles, dynamic sizes) is vectorized with masks (on memrefs only, bounded by
   the tile sizes), then the vector ops are lowered (contract -> outer products -> FMAs,
   transfers to rank 1).

Every op schedule runs inside ``failures(suppress)``: an op the schedule cannot handle stays
(partly tiled) linalg and becomes plain loops, which is slower but always correct. Only ops
whose element types and body ops are on an allow-list are tagged, so nothing exotic reaches the
vectorizer (the bindings are an assertion-enabled build; see MLIR-FACTS).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from mlir import ir

from max.compiler.passes.ir_util import unmark, walk_ops
from max.compiler.pipelines import (
    arg_layouts,
    gather_rows,
    layout_schedule,
    matmul_init,
    matmul_pack,
    matmul_schedule,
    output_views,
    panel_epilogue,
    shared_weight_matmuls,
)
from max.compiler.pipelines import transform_script as ts
from max.compiler.pipelines.masked_accumulators import ragged_tile_sizes
from max.compiler.pipelines.subset_hoisting import hoist_loop_invariant_subsets
from max.compiler.pipelines.conv_schedule import (
    CONV_KINDS,
    Levels,
    conv_schedule,
    conv_tiles,
)

# Matmul tiles (MLIR-FACTS 1): L2 tile [MC, NC, KC], register tile [MR, NR, 1] for the host's
# vector registers (matmul_schedule.register_shape: 8 x 32 with AVX-512, 6 x 16 with AVX2).
MC, NC, KC = 256, 256, 64
MR, NR = matmul_schedule.MR, matmul_schedule.NR
VEC = 64  # elementwise / reduction tile along the innermost dim: 4 zmm of f32
SID = "mo.sid"  # tag: the op's schedule id
KIND = "mo.sched"  # tag: matmul | elementwise | reduction

# f16/bf16: the lowering computes their arithmetic in f32 (precision.py); vectors of them are
# only loaded, converted and stored (bf16 rounding: SOFT_BF16, on vectors too).
_ELEMENTS = {"f32", "f64", "f16", "bf16", "i1", "i8", "i16", "i32", "i64", "index"}
_HALF = {"f16", "bf16"}
# Body ops the vectorizer turns into vector ops one for one.
_BODY_OK = ("arith.", "math.", "linalg.yield", "linalg.index")
# i1 <-> i8 bitcasts of vectors change the element count; math ops that have no LLVM intrinsic
# (libm calls) do not lower on vectors.
_BODY_BAD = {"arith.bitcast", "math.erfc", "math.atan", "math.atan2", "math.tan",
             "math.sinh", "math.cosh", "math.asin", "math.cbrt", "math.expm1",
             "math.asinh", "math.acosh", "math.atanh"}
# Libm-only ops that fast_math replaces by vector code after vectorization, for f32 only.
_BODY_F32_ONLY = {"math.erf", "math.acos"}


# An elementwise op whose operands are all read in its loop order and whose innermost dim is
# short (static, below VEC): flattened to one loop first, tiled by VEC. Tiled per row, gelu
# over [4099, 3] ran one 3-lane masked vector a row (1.56x torch).
FLATTEN = ("flatten",)


def _flattenable(op: ir.Operation) -> bool:
    if op.name != "linalg.generic" or len(op.results) != 1:
        return False
    shape = ir.RankedTensorType(op.results[0].type).shape
    if len(shape) < 2 or shape[-1] < 0 or shape[-1] >= VEC:
        return False
    # Flattened back by an expand_shape of one group: memref.expand_shape takes one dynamic
    # size per group (two aborted expand-strided-metadata: symbolic [n, h, w, 3]).
    if sum(1 for d in shape if d == ir.ShapedType.get_dynamic_size()) > 1:
        return False
    identity = ir.AffineMap.get_identity(len(shape))
    if any(m != identity for m in _maps(op)):
        return False
    # linalg.index in the body would see the flattened index.
    return not any(inner.name == "linalg.index" for inner in walk_ops(op))


# ----------------------------------------------------------------------------- classification

def _element(t: ir.Type) -> str | None:
    if isinstance(t, ir.ShapedType):
        return str(ir.ShapedType(t).element_type)
    return str(t)


def _body_ok(op: ir.Operation, extract: bool = False) -> bool:
    """Whether the vectorizer turns ``op``'s body into vector ops one for one; ``extract``:
    but for ``tensor.extract`` reads (row gathers, see :mod:`gather_rows`)."""
    for inner in walk_ops(op):
        if extract and inner.name == "tensor.extract":
            continue
        if inner.name == "arith.bitcast" and _same_width(inner):
            continue  # the element count stays (see _same_width)
        if inner.name in _BODY_BAD or not inner.name.startswith(_BODY_OK):
            return False
        if inner.name in _BODY_F32_ONLY and any(_element(r.type) != "f32" for r in inner.results):
            return False
        if any(_element(r.type) not in _ELEMENTS for r in inner.results):
            return False
        if inner.name.startswith("math.") and any(_element(r.type) in _HALF
                                                  for r in inner.results):
            return False  # 16-bit math: libm calls per element (the lowering widens first)
    return True


def _same_width(op: ir.Operation) -> bool:
    """A scalar bitcast between 16-, 32- or 64-bit types (vectors of it keep their length:
    f32 <-> i32 in softmax's exp, i16 -> f16 in GPTQ's scales)."""
    def width(t: ir.Type) -> int:
        return (ir.FloatType(t).width if isinstance(t, ir.FloatType)
                else ir.IntegerType(t).width if isinstance(t, ir.IntegerType) else 0)
    w = width(op.operands[0].type)
    return w in (16, 32, 64) and w == width(op.results[0].type)


def _maps(op: ir.Operation) -> list[ir.AffineMap]:
    return [ir.AffineMapAttr(a).value for a in ir.ArrayAttr(op.attributes["indexing_maps"])]


def _iterators(op: ir.Operation) -> list[str]:
    return [str(a) for a in ir.ArrayAttr(op.attributes["iterator_types"])]


def _operands_ok(op: ir.Operation, rank_min: int = 1) -> bool:
    for v in list(op.operands) + list(op.results):
        if not isinstance(v.type, ir.RankedTensorType):
            if isinstance(v.type, ir.ShapedType) or op.name != "linalg.fill":
                return False
            continue  # the scalar of a fill
        t = ir.RankedTensorType(v.type)
        if t.rank < rank_min or _element(t) not in _ELEMENTS:
            return False
    return True


def classify(op: ir.Operation) -> str | None:
    """The schedule for a linalg op on tensors, or None to leave it to plain loops."""
    name = op.name
    if _has_empty_dim(op):
        # No iterations: nothing to gain, and tiling a static size-0 loop asserts (aborts) in
        # computeAllSliceParameters.
        return None
    if matmul_pack.PACKED in op.attributes:
        return "pmatmul"
    if name in CONV_KINDS:
        plan = conv_tiles(op)
        return plan[0] if plan else None
    if name == "linalg.matmul":
        ts = [ir.RankedTensorType(v.type) for v in op.operands]
        if all(str(t.element_type) == "f32" for t in ts) and _body_ok(op):
            return "matmul"
        return None
    if name == "linalg.batch_matmul":
        return matmul_schedule.classify_bmm(op) if _body_ok(op) else None
    if name == "linalg.fill":
        return "elementwise" if _operands_ok(op) else None
    if name != "linalg.generic" or not _operands_ok(op):
        return None
    if not _body_ok(op):
        # A gather of whole rows (an embedding): elementwise tiles, each read contiguous.
        if (all("parallel" in i for i in _iterators(op)) and _body_ok(op, extract=True)
                and gather_rows.contiguous_gather(op)
                and _maps(op)[-1] == ir.AffineMap.get_identity(len(_iterators(op)))):
            return "elementwise"
        return None
    iters = _iterators(op)
    maps = _maps(op)
    if any(not m.is_projected_permutation and not _is_broadcast(m) for m in maps):
        return None
    if all("parallel" in i for i in iters):
        # The output must be the loop order itself: transposed stores would scatter.
        n_in = len(op.operands) - len(op.results)
        identity = all(m == ir.AffineMap.get_identity(len(iters)) for m in maps[n_in:])
        # A transposed read: square tiles (layout_schedule).
        return layout_schedule.classify(op, identity) or ("elementwise" if identity else None)
    reductions = [i for i, it in enumerate(iters) if "reduction" in it]
    # tile_reduction_using_for asserts (aborts) on a constant in the output map: (d0, 0).
    # tile_reduction_using_for leaves linalg.index in a partial reduction's body relative to
    # its tile (MLIR 22): an argmax-style body would compute wrong positions.
    if (reductions == [len(iters) - 1] and len(op.results) == 1 and len(iters) >= 2
            and maps[-1].is_projected_permutation and not _uses_index(op)
            and _reads_innermost_contiguously(maps[:len(op.operands) - 1], len(iters))):
        return "reduction"
    return layout_schedule.classify(op, False)  # reductions over outer axes


def _uses_index(op: ir.Operation) -> bool:
    return any(inner.name == "linalg.index" for inner in walk_ops(op))


def _has_empty_dim(op: ir.Operation) -> bool:
    """Whether an operand or result of ``op`` has a static size-0 dim."""
    return any(isinstance(v.type, ir.RankedTensorType) and 0 in ir.RankedTensorType(v.type).shape
               for v in list(op.operands) + list(op.results))


def _is_broadcast(m: ir.AffineMap) -> bool:
    """(d0, d1) -> (d0, 0): a kept size-1 axis, read as a broadcast."""
    return all(isinstance(e, ir.AffineDimExpr) or
               (isinstance(e, ir.AffineConstantExpr) and ir.AffineConstantExpr(e).value == 0)
               for e in m.results)


def _reads_innermost_contiguously(maps: list[ir.AffineMap], rank: int) -> bool:
    """Every input walks the reduced (innermost) loop along its own last dim, or not at all.

    An input that does not use the reduced loop (the row max of a fused ``sum(exp(x - max))``,
    read as ``(d0, d1) -> (d0, 0)``) is a broadcast: read once per tile, like in elementwise ops.
    """
    last = rank - 1
    for m in maps:
        res = list(m.results)
        dims = [ir.AffineDimExpr(e).position for e in res if isinstance(e, ir.AffineDimExpr)]
        if last not in dims:
            continue
        if not isinstance(res[-1], ir.AffineDimExpr) or ir.AffineDimExpr(res[-1]).position != last:
            return False
    return True


# Loops a lowering rule built around linalg ops to schedule (qmatmul's weight tiles).
SCHEDULED_LOOP = "mo.qtiles"


def _ops_of(block: ir.Block) -> Iterator[ir.OpView]:
    """The ops of a function's block, those in its SCHEDULED_LOOP loops in place of them
    (the tile loop's ops are never split over threads: its threads share the tiles)."""
    for child in block.operations:
        if SCHEDULED_LOOP in child.operation.attributes:
            yield from child.operation.regions[0].blocks[0].operations
        else:
            yield child


Tags = dict[int, tuple[str, int, Levels]]


def _tag(module: ir.Module) -> Tags:
    """Tags the top-level linalg ops of every function; returns sid -> (kind, rank, tiles).

    ``tiles``: the tile sizes of a convolution or pooling op (see ``conv_schedule``), else ().
    """
    i64 = ir.IntegerType.get_signless(64)
    tags: Tags = {}
    for fn in module.body.operations:
        if fn.operation.name != "func.func":
            continue
        for block in fn.operation.regions[0].blocks:
            for child in _ops_of(block):
                op = child.operation
                if not op.name.startswith("linalg."):
                    continue
                kind = classify(op)
                if kind is None or matmul_schedule.FUSED in op.attributes:
                    continue  # (a fused matmul or fill: its epilogue's schedule takes it)
                if matmul_schedule.EPILOGUE in op.attributes:
                    kind = "epilogue"
                elif panel_epilogue.PANEL_EPILOGUE in op.attributes:
                    kind = "pepilogue"
                sid = len(tags)
                op.attributes[SID] = ir.IntegerAttr.get(i64, sid)
                op.attributes[KIND] = ir.StringAttr.get(kind)
                rank = ir.RankedTensorType(op.results[0].type).rank
                if kind == "reduction":
                    rank = len(_iterators(op))
                plan = conv_tiles(op) if op.name in CONV_KINDS else None
                tiles: Levels = plan[1] if plan else ()
                if kind in layout_schedule.LAYOUT_KINDS:
                    tiles = layout_schedule.tag(op, kind)
                elif kind == "matmul":
                    tiles = matmul_schedule.mark_matmul(op)
                elif kind == "bmm":
                    tiles = matmul_schedule.mark_bmm(op)
                elif kind == "epilogue":
                    tiles = matmul_schedule.epilogue_tiles(op)
                elif kind == "pmatmul":
                    tiles = matmul_pack.tiles(op)
                elif kind == "pepilogue":
                    tiles = panel_epilogue.tiles(op)
                elif kind == "elementwise" and _flattenable(op):
                    tiles = FLATTEN
                tags[sid] = (kind, rank, tiles)
    return tags


# ----------------------------------------------------------------------------- scripts

def _op_schedule(sid: int, kind: str, rank: int, tiles: Levels = ()) -> str:
    """Tiling and peeling of one tagged op (stage 1)."""
    s = (f"  %o{sid} = transform.structured.match attributes{{{SID} = {sid} : i64}} in %root"
         f" : ({ts.ANY}) -> {ts.ANY}\n")
    if kind in ("conv", "window", "copy"):
        # Tile sizes divide the static dims: no remainder to peel.
        body = conv_schedule(f"%o{sid}", f"a{sid}", kind, tiles, ts.done("{}"))
    elif kind in layout_schedule.LAYOUT_KINDS:
        body = layout_schedule.schedule(f"%o{sid}", f"a{sid}", kind, tiles, ts.done("{}"))
    elif kind == "epilogue":
        body = matmul_schedule.epilogue_schedule(sid, f"%o{sid}", tiles)
    elif kind == "pmatmul":
        body = matmul_pack.schedule(sid, f"%o{sid}", tiles)
    elif kind == "pepilogue":
        body = panel_epilogue.schedule(sid, f"%o{sid}", tiles)
    elif kind == "bmm" and tiles and tiles[0][3] == 0:
        body = matmul_schedule.bmm_fill_schedule(sid, f"%o{sid}", tiles)
    elif kind in ("matmul", "bmm"):  # bmm: a leading batch loop of 1 in the cache tile
        cache, reg, *pad = tiles or ((MC, NC, KC), (MR, NR, 1))
        body = ts.tile(f"%o{sid}", f"a{sid}", list(cache))
        if kind == "bmm" and pad and pad[0]:  # symbolic m or n: see bmm_register_tiles
            body += ts.tile(f"%a{sid}", f"b{sid}", [*reg[:-1], 0])
            body += matmul_schedule.bmm_register_tiles(sid, f"%b{sid}", f"%b{sid}l", pad[0],
                                                       (reg[1], reg[2]))
            return s + ts.suppress(body)
        if kind == "matmul" and pad:  # symbolic n: its remainder split again
            body += matmul_schedule.column_remainder_halves(sid, f"%a{sid}", reg[0], reg[1],
                                                            pad[0][0])
            return s + ts.suppress(body)
        body += ts.tile(f"%a{sid}", f"b{sid}", list(reg)) + ts.done(f"%b{sid}")
        if kind == "bmm" and matmul_schedule.BMM_K_UNROLL > 1:  # see BMM_K_UNROLL
            body += (f"    transform.loop.unroll %b{sid}l#2 "
                     f"{{factor = {matmul_schedule.BMM_K_UNROLL}}} : {ts.ANY}\n")
        # n first: peeling m clones the n loop, which would invalidate its handle.
        body += ts.peel(f"%b{sid}l#1", f"pn{sid}") + ts.peel(f"%b{sid}l#0", f"pm{sid}")
    elif kind == "elementwise" and tiles == FLATTEN:
        body = (f"    %fl{sid} = transform.structured.flatten_elementwise %o{sid} : "
                f"({ts.ANY}) -> {ts.ANY}\n")
        body += ts.tile(f"%fl{sid}", f"a{sid}", [VEC]) + ts.done(f"%a{sid}")
        body += ts.peel(ts.loop(f"a{sid}", 0, 1), f"p{sid}")
    elif kind == "elementwise":
        body = ts.tile(f"%o{sid}", f"a{sid}", [1] * (rank - 1) + [VEC]) + ts.done(f"%a{sid}")
        body += ts.peel(ts.loop(f"a{sid}", rank - 1, rank), f"p{sid}")
    else:  # reduction over the innermost loop
        par = rank - 1
        body = ts.tile(f"%o{sid}", f"a{sid}", [1] * par + [0]) if par else ""
        tgt = f"%a{sid}" if par else f"%o{sid}"
        body += (f"    %f{sid}, %s{sid}, %c{sid}, %l{sid} = "
                 f"transform.structured.tile_reduction_using_for {tgt} by tile_sizes = "
                 f"{[0] * par + [VEC]} : ({ts.ANY}) -> ({ts.ANY}, {ts.ANY}, {ts.ANY}, {ts.ANY})\n")
        body += ts.done(f"%f{sid}") + ts.done(f"%s{sid}") + ts.done(f"%c{sid}")
        body += ts.peel(f"%l{sid}", f"p{sid}")
    return s + ts.suppress(body)


_GROUP = "mo.sgroup"  # ops whose schedules are the same text, matched at once


def _op_schedules(module: ir.Module, tags: dict[int, tuple]) -> str:
    """Transform script: every tagged op's :func:`_op_schedule`.

    A match walks the whole module, so one per op made the script quadratic in the graph's
    size (MiniLM: 268 ops, 0.5 s). Ops whose schedules are the same text once their sid is
    set aside (a model's layers) are marked ``mo.sgroup`` and matched once, each then
    scheduled on its own under ``transform.foreach``. A schedule that matches its own marks
    again (a peeled tile found by a per-op mark) keeps its own match: in one group, every
    member's marks would be found by each.
    """
    groups: dict[str, list[int]] = {}
    out = ""
    for sid, plan in tags.items():
        text = _op_schedule(_PLACEHOLDER, *plan)
        if text.count("transform.structured.match") == 1:
            groups.setdefault(re.sub(r"%r\d+", "%r", text), []).append(sid)
        else:
            out += _op_schedule(sid, *plan)
    i64 = ir.IntegerType.get_signless(64)
    group_of = {sid: ir.IntegerAttr.get(i64, g)
                for g, sids in enumerate(groups.values()) for sid in sids}

    def mark(op: ir.Operation) -> ir.WalkResult:  # every op of the sid, as its match finds
        if SID in op.attributes and (
                g := group_of.get(ir.IntegerAttr(op.attributes[SID]).value)) is not None:
            op.attributes[_GROUP] = g
        return ir.WalkResult.ADVANCE

    module.operation.walk(mark)
    for g, sids in enumerate(groups.values()):
        body = _op_schedule(_PLACEHOLDER + g, *tags[sids[0]])
        body = body[body.index("\n") + 1:]  # its own match, made the foreach's argument
        out += (f"  %sg{g} = transform.structured.match attributes{{{_GROUP} = {g} : i64}} in "
                f"%root : ({ts.ANY}) -> {ts.ANY}\n"
                f"  transform.foreach %sg{g} : {ts.ANY} {{\n"
                f"  ^bb0(%o{_PLACEHOLDER + g}: {ts.ANY}):\n{body}  }}\n")
    return ts.HEADER + out + ts.FOOTER


_PLACEHOLDER = 1 << 40  # the sid in a group's schedule text (+ the group's number)


# ----------------------------------------------------------------------------- stages

def static_shapes(op: ir.Operation) -> bool:
    """Whether every operand and result of ``op`` has a static shape."""
    for v in list(op.operands) + list(op.results):
        if isinstance(v.type, ir.ShapedType) and not ir.ShapedType(v.type).has_static_shape:
            return False
    return True


def _in_loop(op: ir.Operation) -> bool:
    parent = op.parent
    while parent is not None and parent.name != "func.func":
        if parent.name == "scf.for" or SCHEDULED_LOOP in parent.attributes:
            return True
        parent = parent.parent
    return False


def mark_tiles(module: ir.Module,
          pick: Callable[[ir.Operation], list[int] | None | bool]) -> dict[int, list[int] | None]:
    """Gives each linalg op our tiling produced that ``pick`` accepts an ``mo.vid``: one per
    distinct vector sizes (None: static), shared by the ops that take the same."""
    i64 = ir.IntegerType.get_signless(64)
    targets: dict[int, list[int] | None] = {}
    vids: dict[tuple[int, ...] | None, int] = {}
    for op in walk_ops(module.operation):
        if not op.name.startswith("linalg.") or op.name in ("linalg.yield", "linalg.index"):
            continue
        # Not only in loops: a tile whose loop had one iteration (a [1, 63] fill, a static
        # remainder of a peeled 2-D tiling, a matmul group's peeled corner) is no longer in
        # one (see schedule_tensors).
        if ts.TILED not in op.attributes:
            continue
        sizes = pick(op)
        if sizes is False:
            if "mo.vid" in op.attributes:  # an earlier stage's, not this one's
                del op.attributes["mo.vid"]
            continue
        key = None if sizes is None else tuple(sizes)
        if key not in vids:
            vids[key] = len(targets)
            targets[vids[key]] = sizes
        op.attributes["mo.vid"] = ir.IntegerAttr.get(i64, vids[key])
    return targets


def schedule_tensors(module: ir.Module, threads: int | None = None) -> int:
    """Stage 1: tag, tile, peel; vectorize static tiles; hoist. Returns the number of ops tagged.

    ``threads``: see :func:`cpu_threads.parallelize` (None = as many as the CPUs).
    """
    # A weight's transpose (x @ W.T): W stored transposed at load time instead; where W has
    # other readers, the matmul is dot products of W's rows (shared_weight_matmuls).
    arg_layouts.transpose_args(module)
    shared_weight_matmuls.row_dot_matmuls(module)
    ts.apply(module, layout_schedule.GENERALIZE)  # transposes: generics with a permuted read
    # B in panels first (matmul_pack): faster than fusing a bias/activation into the
    # strided-B kernel; a bias (and residual) after a matmul against a weight is C's start,
    # an activation after one an epilogue on each C block (panel_epilogue). Where the
    # output is now a reshape of another op's result, it is stored in place again
    # (mo-output-views ran before).
    if matmul_init.sum_into_inits(module, classify):
        output_views.write_through_reshapes(module)
    matmul_pack.rewrite(module, classify)
    if panel_epilogue.fuse(module, classify):
        output_views.write_through_reshapes(module)
    matmul_schedule.fuse_epilogues(module, classify)
    matmul_schedule.fuse_bmm_fills(module, classify)
    tags = _tag(module)
    if not tags:
        return 0
    from max.compiler.pipelines import cpu_threads, row_fusion

    # Before tiling: the per-op schedules below then tile each thread's part (or row).
    n = cpu_threads.num_threads() if threads is None else threads
    grouped = row_fusion.fuse_rows(module, {s: t[0] for s, t in tags.items()},
                                   n if cpu_threads.omp_library_dir() is not None else 1)
    cpu_threads.parallelize(module, {s: t for s, t in tags.items() if s not in grouped}, threads)
    # fuse_rows' CSE merges equal inits again (the fills of two matmuls of one input shape):
    # fuse_into_containing_op of a matmul whose fill another matmul also uses takes MLIR's
    # path for a producer used outside the loop, which asserts on an scf.for (two biased
    # attention projections of one input aborted the compiler).
    from max.compiler.pipelines.dps_inits import duplicate_shared_inits

    duplicate_shared_inits(module)
    ts.apply(module, _op_schedules(module, tags))
    unmark(module, _GROUP)
    ts.run_passes(module, ts.CANON)
    gather_rows.hoist_unit_operands(module, ts.TILED)  # a row index from outside each tile
    # Only tiles in loops: a vectorized fill outside any is a pure vector.transfer_write on a
    # tensor, which CSE merges with its twin (two argmax inits: one result overwritten, see
    # dps_inits). On memrefs (vectorize_memrefs) the writes stay apart.
    # Matmul-group tiles are never fills: their static corners outside loops are safe here.
    # A matmul tile of ragged columns is left to the masked vectorization on memrefs.
    targets = mark_tiles(module, lambda op: None if static_shapes(op) and (
        _in_loop(op) or matmul_schedule.VSIZES in op.attributes)
        and ragged_tile_sizes(op) is None else False)
    if targets:
        ts.apply(module, ts.vectorize_script(targets))
    ts.run_passes(module, ts.CANON)
    hoist_loop_invariant_subsets(module)  # the accumulators kept in registers across k
    ts.run_passes(module, ts.CANON)
    return len(tags)


__all__ = ["VEC", "classify", "mark_tiles", "schedule_tensors", "static_shapes"]
