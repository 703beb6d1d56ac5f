"""Packed matmuls: B read as 32-column panels ``Bp[N/32, K, 32]``, each one contiguous.

A plain ``linalg.matmul`` reads B[k, n0:n0+32] for every k: rows N floats apart (4 KiB at
N=1024), a new page each, that no prefetcher follows; at 1024^3 that kernel reaches about 70%
of MKL on one core (MLIR-FACTS 1, remeasured). In panels, the ``K x 32`` slice a register tile
walks is one contiguous stream, and it stays in L1 while the register tile runs down all the
rows of the cache tile (the register loops are interchanged: panel outer, rows inner).

:func:`rewrite` (in ``schedule_tensors``, before the epilogue groups are formed) turns each
eligible ``C = A @ B`` into ``C3[m, j, n] += A[m, k] * Bp[j, k, n]``: a 3-D ``linalg.generic``
tagged :data:`PACKED`, on C viewed as ``[M, N/32, 32]`` (the same bytes). Bp is

* a constant's panels, packed once at compile time: when B is an externalized constant (a
  trailing graph argument, see ``mo.num_constants``) used by this matmul only, the IR reads
  the argument's bytes as ``[N/32, K, 32]`` and the module records the argument in
  :data:`PACKED_ARGS`; the compile worker (:func:`pack_constant`) stores the constant in that
  order in ``constants.bin``. The record is made by the same stage that rewrites the IR, so a
  failed schedule (the whole module restored and run as plain loops) records nothing.
* else packed at run time by a copy (a transposing generic, scheduled as elementwise), for
  enough rows to pay for it (:data:`MIN_ROWS_RUNTIME`).

A bias or activation after a panel matmul is then no epilogue group (``fuse_epilogues`` finds
no ``linalg.matmul``): it runs as its own elementwise pass over C, from L2 at these sizes.
Measured (2 threads, same process): MLP 32x1024->4096 (GELU)->1024 2.67 ms panels + separate
GELU vs 3.04 ms fused on strided B; linear+GELU 1.27 vs 1.58 ms; encoder block 2.46 vs 2.60.
Matmuls that get no panels (N not a multiple of 32, symbolic or fewer than 8 rows, a run-time
B with few rows) keep the fused epilogues of ``matmul_schedule``.

The generic is correct IR in its own right: anything a schedule leaves of it is plain loops.
:func:`schedule` tiles it to cache tiles, then to ``[8, 1, 32]`` register tiles, drops the
unit panel dim (``fold_unit_extent_dims``), turns the remaining 2-D generic into a
``linalg.matmul`` (``specialize``) and tiles its K by 1: from there it is the plain matmul's
register kernel (16 zmm accumulators held across k, 8 broadcasts and 2 loads per k).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from mlir import ir
from mlir.dialects import arith, bufferization, linalg, memref, tensor

from max.compiler.lowering.builders import PARALLEL, REDUCTION, generic

PANEL = 32  # columns of a panel: the register tile's width (2 zmm)
MR = 8  # rows of the register tile
PACKED = "mo.pmm"  # on the panel-matmul generic
PACKED_ARGS = "mo.packed_constants"  # module: the constants (indices) stored in panels
NUM_CONSTANTS = "mo.num_constants"  # graph function: trailing inputs that are constants
# Cache tile: MC rows x JC panels, K blocks of KC. A KC x 32 panel slice (32 KiB) stays in L1
# while the rows run; the MC x KC block of A (128 KiB) in L2. Measured at 1024^3 on one core:
# (128, 8, 256) and (256, 8, 256) best, (256, 8, 64) 10% slower.
MC, JC, KC = 128, 8, 256
MIN_ROWS_RUNTIME = 256  # a run-time copy of B (2 K N bytes moved) pays for M rows of reuse
MIN_MACS = 1 << 18
N_SPLIT_ROWS = 64  # up to this many rows, threads split the panels instead of the rows

_DYN = ir.ShapedType.get_dynamic_size()


def _static_shape(v: ir.Value) -> list[int] | None:
    t = ir.RankedTensorType(v.type)
    return None if _DYN in t.shape else list(t.shape)


def _op(x: object) -> ir.Operation | None:
    if isinstance(x, ir.Operation):
        return x
    return getattr(x, "operation", None) if isinstance(x, ir.OpView) else None


def _constant_args(fn: ir.Operation) -> dict[int, int]:
    """Entry argument index -> constant index, for the arguments that hold constants."""
    if NUM_CONSTANTS not in fn.attributes or "mo.num_inputs" not in fn.attributes:
        return {}
    n_const = ir.IntegerAttr(fn.attributes[NUM_CONSTANTS]).value
    n_in = ir.IntegerAttr(fn.attributes["mo.num_inputs"]).value
    return {n_in - n_const + i: i for i in range(n_const)}


def _constant_source(b: ir.Value, const_args: dict[int, int]) -> int | None:
    """The constant index behind B when B is a constant read by this matmul only."""
    owner = _op(b.owner)
    if owner is None or owner.name != "bufferization.to_tensor" or len(list(b.uses)) != 1:
        return None
    src = owner.operands[0]
    if not isinstance(src, ir.BlockArgument) or len(list(src.uses)) != 1:
        return None
    return const_args.get(ir.BlockArgument(src).arg_number)


def eligible(mm: ir.Operation) -> bool:
    """A static f32 2-D matmul of whole panels, large enough, with at least a register tile
    of rows (fewer rows keep the small-M tiles of matmul_schedule)."""
    shapes = [_static_shape(v) for v in mm.operands]
    if any(s is None or len(s) != 2 for s in shapes):
        return False
    if any(str(ir.RankedTensorType(v.type).element_type) != "f32" for v in mm.operands):
        return False
    (m, k), (_, n) = shapes[0], shapes[1]
    return m >= MR and k >= 1 and n >= PANEL and n % PANEL == 0 and m * n * k >= MIN_MACS


def _reassoc(groups: list[list[int]]) -> ir.ArrayAttr:
    i64 = ir.IntegerType.get_signless(64)
    return ir.ArrayAttr.get([ir.ArrayAttr.get([ir.IntegerAttr.get(i64, d) for d in g])
                             for g in groups])


def _expand(x: ir.Value, shape: list[int], groups: list[list[int]]) -> ir.Value:
    t = ir.RankedTensorType.get(shape, ir.RankedTensorType(x.type).element_type)
    return tensor.ExpandShapeOp(t, x, _reassoc(groups), [], shape).result


def _collapse(x: ir.Value, shape: list[int], groups: list[list[int]]) -> ir.Value:
    t = ir.RankedTensorType.get(shape, ir.RankedTensorType(x.type).element_type)
    return tensor.collapse_shape(t, x, groups)


def _panels(b: ir.Value, k: int, n: int, prepacked: bool) -> ir.Value:
    """Bp [n/32, k, 32]: B's bytes read as panels (prepacked), or a copy into panels."""
    j = n // PANEL
    if prepacked:
        flat = _collapse(b, [k * n], [[0, 1]])
        return _expand(flat, [j, k, PANEL], [[0, 1, 2]])
    b3 = _expand(b, [k, j, PANEL], [[0], [1, 2]])
    f32 = ir.F32Type.get()
    empty = tensor.empty([j, k, PANEL], f32)
    read = ir.AffineMap.get(3, 0, [ir.AffineDimExpr.get(1), ir.AffineDimExpr.get(0),
                                   ir.AffineDimExpr.get(2)])
    return generic([b3], [empty], [read, ir.AffineMap.get_identity(3)], [PARALLEL] * 3,
                   lambda x, _: x)[0]


def _init3(init: ir.Value, m: int, j: int) -> ir.Value:
    """C's initial value as [m, j, 32]: a fresh fill where C was a fill, else a view."""
    fill = _op(init.owner)
    if fill is not None and fill.name == "linalg.fill":
        empty = tensor.empty([m, j, PANEL], ir.RankedTensorType(init.type).element_type)
        return linalg.fill(fill.operands[0], outs=[empty])
    return _expand(init, [m, j, PANEL], [[0], [1, 2]])


def _panel_matmul(a: ir.Value, bp: ir.Value, c3: ir.Value) -> ir.Value:
    d = [ir.AffineDimExpr.get(i) for i in range(4)]  # (m, j, n, k)
    maps = [ir.AffineMap.get(4, 0, [d[0], d[3]]), ir.AffineMap.get(4, 0, [d[1], d[3], d[2]]),
            ir.AffineMap.get(4, 0, [d[0], d[1], d[2]])]

    def body(x: ir.Value, y: ir.Value, acc: ir.Value) -> ir.Value:
        return arith.addf(acc, arith.mulf(x, y))

    out = generic([a, bp], [c3], maps, [PARALLEL] * 3 + [REDUCTION], body)[0]
    _op(out.owner).attributes[PACKED] = ir.UnitAttr.get()
    return out


def _write_through(result: ir.Value, c3: ir.Value) -> None:
    """Where C is stored into an output memref, store C3 into a [m, j, 32] view of it: empty
    tensor elimination stops at reshapes, so C3 would get a buffer of its own and a copy."""
    uses = list(result.uses)
    store = _op(uses[0].owner) if len(uses) == 1 else None
    if store is None or store.name != "bufferization.materialize_in_destination":
        return
    dest = store.operands[1]
    if not isinstance(dest.type, ir.MemRefType):
        return
    layout = ir.MemRefType(dest.type).layout
    if not isinstance(layout, ir.AffineMapAttr) or layout.value != ir.AffineMap.get_identity(2):
        return  # a strided view: leave the copy
    shape = list(ir.RankedTensorType(c3.type).shape)
    t = ir.MemRefType.get(shape, ir.MemRefType(dest.type).element_type)
    with ir.InsertionPoint(store), store.location:
        view = memref.expand_shape(t, dest, _reassoc([[0], [1, 2]]), [], shape)
        bufferization.MaterializeInDestinationOp(None, c3, view, restrict=True, writable=True)
    store.erase()


def rewrite(module: ir.Module, classify: Callable[[ir.Operation], str | None]) -> int:
    """Turns each eligible top-level matmul into a panel matmul; returns how many.

    ``classify``: cpu_schedule's; only what it schedules as ``matmul`` is taken (and no
    matmul already fused into an epilogue group: one carrying ``mo.fused``).
    """
    from max.compiler.pipelines.matmul_schedule import FUSED

    count, packed_args = 0, []
    for fn in module.body.operations:
        if fn.operation.name != "func.func":
            continue
        const_args = _constant_args(fn.operation)
        for block in fn.operation.regions[0].blocks:
            for child in list(block.operations):
                mm = child.operation
                if mm.name != "linalg.matmul" or FUSED in mm.attributes:
                    continue
                if classify(mm) != "matmul" or not eligible(mm):
                    continue
                (m, k), n = _static_shape(mm.operands[0]), _static_shape(mm.operands[1])[1]
                arg = _constant_source(mm.operands[1], const_args)
                if arg is None and m < MIN_ROWS_RUNTIME:
                    continue  # a copy of B per call would cost about what panels save
                with ir.InsertionPoint(mm), mm.location:
                    bp = _panels(mm.operands[1], k, n, arg is not None)
                    c3 = _panel_matmul(mm.operands[0], bp, _init3(mm.operands[2], m, n // PANEL))
                    c = _collapse(c3, [m, n], [[0], [1, 2]])
                old_init = _op(mm.operands[2].owner)
                _write_through(mm.results[0], c3)
                mm.results[0].replace_all_uses_with(c)
                mm.erase()
                if (old_init is not None and old_init.name == "linalg.fill"
                        and not list(old_init.results[0].uses)):
                    old_init.erase()
                if arg is not None:
                    packed_args.append(arg)
                count += 1
    if packed_args:
        i64 = ir.IntegerType.get_signless(64)
        module.operation.attributes[PACKED_ARGS] = ir.ArrayAttr.get(
            [ir.IntegerAttr.get(i64, a) for a in sorted(packed_args)])
    return count


def packed_args(module: ir.Module) -> list[int]:
    """The constants (indices among the externalized ones) :func:`rewrite` reads as panels."""
    if PACKED_ARGS not in module.operation.attributes:
        return []
    return [ir.IntegerAttr(a).value for a in ir.ArrayAttr(module.operation.attributes[PACKED_ARGS])]


def mark_constants(fn: ir.Operation, count: int) -> None:
    """Records on the graph function that its last ``count`` inputs are constants (the
    compile worker's externalized ones): :func:`rewrite` may store those in panels."""
    with fn.context:
        fn.attributes[NUM_CONSTANTS] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), count)


def pack_constants(module: ir.Module, constants: list[np.ndarray]) -> list[np.ndarray]:
    """``constants`` (the trailing inputs' values) with those :func:`rewrite` reads as
    panels (:func:`packed_args`) stored in panel order."""
    out = list(constants)
    for i in packed_args(module):
        out[i] = pack_constant(out[i])
    return out


def pack_constant(w: np.ndarray) -> np.ndarray:
    """``w[K, N]`` in panel order (``[N/32, K, 32]``), shaped ``[K, N]`` like the argument."""
    k, n = w.shape
    return np.ascontiguousarray(w.reshape(k, n // PANEL, PANEL).transpose(1, 0, 2)).reshape(k, n)


def drop_self_copies(module: ir.Module) -> int:
    """Erases each ``memref.copy(expand_shape(collapse_shape(x)), x)``: the unit panel dim
    folded away by reshapes (see :func:`schedule`) comes back as a copy of the register
    tile's C block onto itself after bufferization. Returns how many."""
    found: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "memref.copy":
            src = _op(op.operands[0].owner)
            if src is not None and src.name == "memref.expand_shape":
                inner = _op(src.operands[0].owner)
                if (inner is not None and inner.name == "memref.collapse_shape"
                        and inner.operands[0] == op.operands[1]
                        and src.attributes["reassociation"] == inner.attributes["reassociation"]):
                    found.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    for op in found:
        op.erase()
    return len(found)


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


def tiles(op: ir.Operation) -> tuple[tuple[int, ...], ...]:
    """((mc, jc, kc),) of a panel matmul; 0 where the tile covers the whole dim."""
    m, k = ir.RankedTensorType(op.operands[0].type).shape
    j = ir.RankedTensorType(op.operands[1].type).shape[0]
    mc, jc, kc = _fit(m, MC, MR), _fit(j, JC, 1), _fit(k, KC, 16)
    return ((0 if mc == m else mc, 0 if jc == j else jc, 0 if kc == k else kc),)


def thread_plan(op: ir.Operation, threads: int,
                min_macs: int) -> tuple[int, int, int, int] | None:
    """Rows split over threads, or the panels for few rows; the fill of C goes along."""
    m, k = ir.RankedTensorType(op.operands[0].type).shape
    j = ir.RankedTensorType(op.operands[1].type).shape[0]
    if m * j * PANEL * k < min_macs:
        return None
    if m <= N_SPLIT_ROWS and j >= threads:
        return 4, 2, 1, -(-j // threads)
    if m < threads * MR:
        return None
    return 4, 2, 0, 0


def schedule(sid: int, target: str, plan: tuple[tuple[int, ...], ...]) -> str:
    """Transform ops (inside a suppressed sequence) for the panel matmul ``target``."""
    from max.compiler.pipelines.cpu_schedule import _ANY, _done, _peel, _tile

    (mc, jc, kc), = plan
    s, op = "", target
    if mc or jc or kc:
        s += _tile(op, f"pa{sid}", [mc, jc, 0, kc])
        op = f"%pa{sid}"
    # Panel outer, rows inner: the panel's K x 32 slice stays in L1 over all the rows.
    s += _tile(op, f"pb{sid}", [MR, 1, PANEL, 0]).replace(
        f" : ({_ANY})", f" interchange = [1, 0, 2, 3] : ({_ANY})", 1)
    s += _peel(f"%pb{sid}l#1", f"ppm{sid}")  # rows not a multiple of 8: a static remainder
    # The unit panel dim dropped (rank-reducing slices): a 2-D matmul-shaped generic.
    s += (f"    transform.apply_patterns to %pb{sid}l#0 {{\n"
          f"      transform.apply_patterns.linalg.fold_unit_extent_dims_via_reshapes\n"
          f"    }} : {_ANY}\n"
          f"    %pg{sid} = transform.structured.match ops{{[\"linalg.generic\"]}} in %pb{sid}l#0"
          f" : ({_ANY}) -> {_ANY}\n"
          f"    %pm{sid} = transform.structured.specialize %pg{sid} : ({_ANY}) -> {_ANY}\n")
    s += _tile(f"%pm{sid}", f"pk{sid}", [0, 0, 1]) + _done(f"%pk{sid}")
    return s


__all__ = ["NUM_CONSTANTS", "PACKED", "PACKED_ARGS", "drop_self_copies", "eligible",
           "mark_constants", "pack_constant", "pack_constants", "packed_args",
           "rewrite", "schedule", "thread_plan", "tiles"]
