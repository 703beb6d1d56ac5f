"""Run-time thread counts for the parallel regions of ops with symbolic sizes.

:mod:`cpu_threads` decides at compile time which ops go on threads. An op whose loop sizes
are symbolic (an LLM's ``[batch, seq_len, hidden]`` with batch = seq_len = 1 per decode step)
is assumed large and split: at run time it may be tiny, and the fork/join then costs far more
than the work (about 50 us here when the OpenMP worker has gone to sleep, versus ~1 us of
work). So such an op's ``scf.forall`` gets a run-time trip count instead of ``n``:

* :func:`runtime_threads` (on tensors, before the thread split) inserts, just before the op,
  ``%nt = work >= threshold ? clamp(split loop size, 1, n) : 1`` (written as a min), where
  ``work`` is the op's iteration count (multiply-adds for matmuls and convs, elements
  otherwise) computed from ``tensor.dim`` of its operands. The threshold is the one the
  compile-time plan uses (``MIN_PARALLEL_MACS`` / ``MIN_PARALLEL_ELEMENTS``). The split then uses
  ``tile_using_forall num_threads [.., %nt, ..]``: ``%nt`` equal parts.
* :func:`set_num_threads` (after ``convert-scf-to-openmp``) gives every ``omp.parallel``
  whose loop has a non-constant trip count ``num_threads(clamp(trips, 1, n))``. One
  iteration: one thread, and libiomp5 runs the region serialized on the caller without
  waking a worker (~1 us). The ``omp.wsloop`` (static schedule) shares the iterations among
  whatever team it gets, so the region is correct for any number of threads.

Static sizes keep today's plan (a static count, no run-time test).

A reduction split over a symbolic loop also gets a second split loop (:func:`second_axis`):
its parts are ``n // parts of the first`` (2 at batch 1 on two threads, 1 from batch 2), so
the forall has two run-time trip counts whose product never exceeds ``n``.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, linalg, tensor

NT_ATTR = "mo.nt"  # on the run-time thread count of the op whose mo.sid it equals
NT2_ATTR = "mo.nt2"  # on the run-time parts of its second split loop (see second_axis)
MAC_KINDS = frozenset({"matmul", "epilogue", "bmm", "pmatmul", "pepilogue", "conv"})
_DYN = ir.ShapedType.get_dynamic_size()
Extent = int | tuple[ir.Value, int]  # a static size, or (tensor, dim) to read at run time


def loop_extents(op: ir.Operation) -> list[Extent] | None:
    """Each loop's size of a linalg op: static where any operand gives it statically, else
    the first (operand, dim) that spans it; None where a loop has neither (or no maps)."""
    try:
        maps_attr = linalg.get_indexing_maps(op) if op.name.startswith("linalg.") else None
    except (TypeError, ValueError, RuntimeError):  # not a structured op after all
        return None
    if maps_attr is None:
        return None
    maps = [ir.AffineMapAttr(a).value for a in maps_attr]
    if not maps or len(maps) != len(op.operands):
        return None
    extents: list[Extent | None] = [None] * maps[0].n_dims
    for v, m in zip(op.operands, maps):
        if not isinstance(v.type, ir.RankedTensorType):
            continue
        for pos, (expr, size) in enumerate(zip(m.results, ir.RankedTensorType(v.type).shape)):
            if not isinstance(expr, ir.AffineDimExpr):
                continue
            d = ir.AffineDimExpr(expr).position
            if size != _DYN:
                extents[d] = size
            elif extents[d] is None:
                extents[d] = (v, pos)
    if any(e is None for e in extents):
        return None
    return extents  # type: ignore[return-value]


def _init_of(v: ir.Value) -> ir.Value:
    """The tensor a linalg op's result takes its shape from (its init, recursively): a size
    read there is no use of the result, which would keep a producer that the thread split
    fuses (a matmul, a fill) alive outside the forall."""
    while not isinstance(v.owner, ir.Block):
        op = v.owner.operation if hasattr(v.owner, "operation") else v.owner
        if not op.name.startswith("linalg.") or not len(op.results):
            break
        v = list(op.operands)[len(op.operands) - len(op.results) + ir.OpResult(v).result_number]
    return v


def _work(op: ir.Operation, kind: str) -> tuple[list[Extent], int] | None:
    """The extents whose product is ``op``'s work, and the threshold it is compared with."""
    from max.compiler.pipelines.cpu_threads import MIN_PARALLEL_ELEMENTS, MIN_PARALLEL_MACS

    counted = op
    if kind == "epilogue":  # the work is the matmul's, the epilogue's operand EPILOGUE
        from max.compiler.passes.ir_util import as_op
        from max.compiler.pipelines.matmul_schedule import EPILOGUE

        counted = as_op(op.operands[ir.IntegerAttr(op.attributes[EPILOGUE]).value].owner)
        if counted is None:
            return None
    if kind == "pepilogue":  # the panel matmul's work (panel_epilogue)
        from max.compiler.pipelines.panel_epilogue import matmul_of

        counted = matmul_of(op)
        if counted is None:
            return None
    extents = loop_extents(counted)
    if extents is None:
        return None
    if kind == "window":  # pools and depthwise convs are counted by their outputs
        extents = extents[:4]
    return extents, MIN_PARALLEL_MACS if kind in MAC_KINDS else MIN_PARALLEL_ELEMENTS


def second_axis(op: ir.Operation, kind: str, axis: int, n: int) -> int | None:
    """The loop to split where the planned loop ``axis`` is symbolic and turns out smaller
    than the thread count at run time (a batch of 1), or None.

    Only for reductions (``reduction``, ``outer_reduction``): attention's product-sums over a
    KV cache, ``[B, kv_heads, group, T, P, d]``, have their work in the inner loops. A
    parallel loop other than ``axis``, never the innermost (the vector loop) nor a reduced one
    nor one of size 1: a symbolic one (the cache length: likely large, and it splits evenly),
    else the static one whose ``n`` parts are the most even (3 over 2 threads: 2 + 1), the
    larger on a tie, the outer on a tie of both. (The innermost loop, split into run-time
    parts, would leave a masked remainder tile that the reduction lowers to scalars.)
    """
    if kind not in ("reduction", "outer_reduction"):
        return None
    extents = loop_extents(op)
    if extents is None or axis >= len(extents) or isinstance(extents[axis], int):
        return None
    iters = [str(a) for a in ir.ArrayAttr(op.attributes["iterator_types"])]
    best: tuple[float, int, int] | None = None  # (evenness, size, -loop)
    for i, (it, e) in enumerate(zip(iters[:-1], extents[:-1])):
        if i == axis or "parallel" not in it or e == 1:
            continue
        score = (2.0, 0, -i) if not isinstance(e, int) else (e / (n * -(-e // n)), e, -i)
        if best is None or score > best:
            best = score
    return None if best is None else -best[2]


def runtime_threads(op: ir.Operation, kind: str, axis: int, n: int, key: int,
                    second: int | None = None) -> bool:
    """Inserts before ``op`` its run-time thread count (an ``index``, marked ``mo.nt = key``)
    where its work depends on symbolic sizes; returns whether it did.

    ``axis``: the loop split into ``n`` equal parts. False (nothing inserted) where every
    size involved is static, or where the work cannot be computed simply: the caller keeps
    the static count ``n``. ``second`` (:func:`second_axis`): also the parts of that loop
    (marked ``mo.nt2 = key``), ``n // parts of axis`` clamped to its size: the threads that
    ``axis`` leaves idle (all but one where it is 1 at run time) share it.
    """
    work = _work(op, kind)
    extents = loop_extents(op)
    if work is None or extents is None or axis >= len(extents):
        return False
    counted, threshold = work
    split = extents[axis]
    if all(isinstance(e, int) for e in counted) and isinstance(split, int):
        return False
    with op.context, op.location, ir.InsertionPoint(op):
        index = ir.IndexType.get()

        def const(v: int) -> ir.Value:
            return arith.constant(index, v)

        def value(e: Extent) -> ir.Value:
            return const(e) if isinstance(e, int) else tensor.dim(_init_of(e[0]), const(e[1]))

        static = 1
        total: ir.Value | None = None
        for e in counted:
            if isinstance(e, int):
                static *= e
            else:
                total = value(e) if total is None else arith.muli(total, value(e))
        total = const(static) if total is None else arith.muli(total, const(static))
        big = arith.cmpi(arith.CmpIPredicate.uge, total, const(threshold))
        if isinstance(split, int):
            parts = const(max(1, min(split, n)))
        else:
            parts = arith.maxui(arith.minui(value(split), const(n)), const(1))
        # min(parts, big ? n : 1), not big ? parts : 1: the same count (parts is in [1, n]),
        # but ending in an op that value-bounds analysis does not look through. At a select
        # it compares the operands, two Presburger systems solved, and it reaches the count
        # from every pair of slices in the forall that bufferization and subset hoisting
        # compare: a 6-layer MiniLM's empty-tensor elimination and bufferization took 2.85 s
        # with selects, 1.87 s with mins, and learned nothing from them (parts, a min/max, is
        # opaque to it).
        cap = arith.select(big, const(n), const(1))
        nt = arith.minui(parts, cap)
        i64 = ir.IntegerType.get_signless(64)
        nt.owner.attributes[NT_ATTR] = ir.IntegerAttr.get(i64, key)
        if second is not None:
            rest = arith.divui(const(n), parts)
            size = extents[second]
            limit = const(size) if isinstance(size, int) else value(size)
            parts2 = arith.maxui(arith.minui(rest, limit), const(1))
            nt2 = arith.minui(parts2, cap)
            nt2.owner.attributes[NT2_ATTR] = ir.IntegerAttr.get(i64, key)
    return True


def match_threads(key: int, name: str, attr: str = NT_ATTR) -> str:
    """Transform op: the handle ``%name`` to the run-time thread count marked ``key``
    (``attr``: :data:`NT2_ATTR` for the second split loop's parts)."""
    any_op = "!transform.any_op"
    return (f"    %{name} = transform.structured.match attributes{{{attr} = {key} : i64}} "
            f"in %root : ({any_op}) -> {any_op}\n")


def forall_text(loops: int, axis: int, n: int, handle: str | None,
                second: tuple[int, str] | None = None) -> str:
    """What follows the target of a ``tile_using_forall``: ``n`` parts of loop ``axis``
    (``handle``: the run-time thread count's handle instead of the static ``n``;
    ``second``: (loop, handle) of a second split loop's run-time parts)."""
    any_op = "!transform.any_op"
    parts = ["0"] * loops
    parts[axis] = handle or str(n)
    if second is not None:
        parts[second[0]] = second[1]
    handles = sum(1 for p in parts if p.startswith("%"))
    types = f"({', '.join([any_op] * (1 + handles))})"
    return f"num_threads [{', '.join(parts)}] : {types} -> ({any_op}, {any_op})"


def _inside(v: ir.Value, region_op: ir.Operation) -> bool:
    """Whether ``v`` is defined inside ``region_op``'s regions."""
    owner = v.owner
    op = owner.owner if isinstance(owner, ir.Block) else owner
    while op is not None:
        op = op.operation if hasattr(op, "operation") else op
        if op == region_op:
            return True
        op = op.parent
    return False


def _constant(v: ir.Value) -> bool:
    owner = v.owner
    return (not isinstance(owner, ir.Block)
            and owner.name in ("arith.constant", "llvm.mlir.constant"))


def parallel_regions(module: ir.Module) -> list[ir.Operation]:
    """The module's ``omp.parallel`` ops (one walk, which :func:`set_num_threads` and
    ``thread_spread.spread_workers`` share)."""
    found: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "omp.parallel":
            found.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return found


def set_num_threads(module: ir.Module, n: int,
                    parallels: list[ir.Operation] | None = None) -> int:
    """``omp.parallel`` regions whose loop has a non-constant trip count: ``num_threads`` =
    ``clamp(trips, 1, n)``, computed before the region. ``parallels``: the module's
    ``omp.parallel`` ops where the caller has them (:func:`parallel_regions`). Returns how
    many were changed."""
    regions: list[tuple[ir.Operation, ir.Operation]] = []
    for op in parallel_regions(module) if parallels is None else parallels:
        nest = _loop_nest(op)
        if nest is not None:
            regions.append((op, nest))
    changed = 0
    for par, nest in regions:
        ops = list(nest.operands)
        if len(ops) % 3 or not ops:
            continue
        k = len(ops) // 3
        lbs, ubs, steps = ops[:k], ops[k:2 * k], ops[2 * k:]
        if all(_constant(v) for v in ops) or any(_inside(v, par) for v in ops):
            continue
        where = _num_threads_index(par)
        if where is None:
            continue  # no num_threads operand: not convert-scf-to-openmp's region
        old = par.operands[where]
        with par.context, par.location, ir.InsertionPoint(par):
            index = ir.IndexType.get()
            trips: ir.Value | None = None
            for lb, ub, step in zip(lbs, ubs, steps):
                t = arith.ceildivsi(arith.subi(ub, lb), step)
                trips = t if trips is None else arith.muli(trips, t)
            assert trips is not None
            count = arith.maxsi(arith.minsi(trips, arith.constant(index, n)),
                                arith.constant(index, 1))
            par.operands[where] = arith.index_cast(old.type, count)
        changed += 1
    return changed


def _num_threads_index(par: ir.Operation) -> int | None:
    """The operand index of an ``omp.parallel``'s ``num_threads`` (segments: allocate_vars,
    allocator_vars, if_expr, num_threads, ...), or None where it has none."""
    segments = list(ir.DenseI32ArrayAttr(par.attributes["operandSegmentSizes"]))
    return sum(segments[:3]) if len(segments) > 3 and segments[3] == 1 else None


def num_threads_of(par: ir.Operation) -> ir.Value | None:
    """An ``omp.parallel``'s ``num_threads`` operand, or None."""
    where = _num_threads_index(par)
    return None if where is None else par.operands[where]


def _loop_nest(par: ir.Operation) -> ir.Operation | None:
    """The ``omp.loop_nest`` of an ``omp.parallel`` > ``omp.wsloop`` region, or None."""
    for block in par.regions[0].blocks:
        for child in block.operations:
            if child.operation.name == "omp.wsloop":
                for b in child.operation.regions[0].blocks:
                    for inner in b.operations:
                        if inner.operation.name == "omp.loop_nest":
                            return inner.operation
    return None


__all__ = ["NT2_ATTR", "NT_ATTR", "forall_text", "loop_extents", "match_threads",
           "num_threads_of", "parallel_regions", "runtime_threads", "second_axis",
           "set_num_threads"]
