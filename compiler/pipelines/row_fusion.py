"""Row groups: softmax and layer norm computed one row at a time, the row kept in cache.

The lowering writes a last-axis softmax or layer norm as a few passes over the input that
share only *row values* (rank - 1 tensors: the max, the sum, the mean): row reductions
(``[parallel.., reduction]``), small elementwise ops on row values, and one final elementwise
op that reads the input and the row values (through ``(d0, .., dn) -> (d0, .., dn-1)``).
Scheduled op by op (:mod:`cpu_schedule`), each pass would stream the whole input from memory:
4 passes over an 8 MiB softmax input. Here the final op is the *anchor* of a group: it is
tiled to one row (``tile_using_for``), and every producer of the group is fused into that
loop (``fuse_into_containing_op``), consumers first. Each row is then read from memory once
and re-read from L1/L2 by the next passes, and the row values never leave registers or L1.
With several threads the anchor is first split over its rows (``tile_using_forall``, the
producers fused into each thread's part), so that the whole group forks once.

The per-op schedules of cpu_schedule then tile each fused op as usual (the ``mo.sid`` tags
survive fusion): the reductions by ``tile_reduction_using_for``, the anchor by ``[1, .., 64]``.
Row-invariant work in the anchor (``1 / sum``, ``1 / sqrt(var + eps)``) ends up outside its
vector loop (the row values are loop-invariant broadcasts there; the schedule's hoisting).

A producer joins a group only if it is tagged, plain (elementwise or reduction: never a
matmul's epilogue) and all its uses are in the group, and it is a row reduction, an
elementwise op on row values, the fill that initializes one of those, or a full-size
elementwise op read element by element (softmax's ``exp(x - max)``, a mask's ``where``):
each is computed once per row, into a row-sized buffer. After bufferization,
:func:`hoist_row_buffers` makes those buffers once per thread, and :func:`prefetch_next_rows`
has the second pass over a row (compute-bound, on data in L1) prefetch the next row, so that
memory works while the core computes (softmax 512x4096, 1 thread: -15 %).
"""

from __future__ import annotations

from mlir import ir

from max.compiler.passes.ir_util import as_op, defined_within, is_within
from max.compiler.pipelines import transform_script as ts

SID = "mo.sid"


def _maps(op: ir.Operation) -> list[ir.AffineMap]:
    return [ir.AffineMapAttr(a).value for a in ir.ArrayAttr(op.attributes["indexing_maps"])]


def _iterators(op: ir.Operation) -> list[str]:
    return [str(a) for a in ir.ArrayAttr(op.attributes["iterator_types"])]


def _row_map(m: ir.AffineMap, loops: int, rows: int) -> bool:
    """``m`` reads a rank-``rows`` row value: the first ``rows`` of ``loops`` loops, in order."""
    return (m.n_dims == loops and len(m.results) == rows and
            all(isinstance(e, ir.AffineDimExpr) and ir.AffineDimExpr(e).position == i
                for i, e in enumerate(m.results)))


def _is_row_op(op: ir.Operation, rows: int) -> bool:
    """A generic whose result is a rank-``rows`` row value: a row reduction over one more
    (innermost) loop, or an elementwise op on row values."""
    if op.name != "linalg.generic" or len(op.results) != 1:
        return False
    if ir.RankedTensorType(op.results[0].type).rank != rows:
        return False
    iters = _iterators(op)
    out = _maps(op)[-1]
    if len(iters) == rows + 1:
        return ("reduction" in iters[-1] and all("parallel" in i for i in iters[:-1])
                and _row_map(out, rows + 1, rows))
    return len(iters) == rows and all("parallel" in i for i in iters) and _row_map(
        out, rows, rows)


def _reads_as_row(consumer: ir.Operation, operand: int, rows: int) -> bool:
    """Whether ``consumer`` reads its operand ``operand`` (a row value) row by row."""
    if consumer.name == "linalg.fill":
        return False
    m = _maps(consumer)[operand]
    return _row_map(m, len(_iterators(consumer)), rows)


def _is_full_op(op: ir.Operation, rows: int) -> bool:
    """An elementwise generic over the full ``rows + 1`` loops, written in loop order."""
    if op.name != "linalg.generic" or len(op.results) != 1:
        return False
    iters = _iterators(op)
    return (len(iters) == rows + 1 and all("parallel" in i for i in iters)
            and _maps(op)[-1] == ir.AffineMap.get_identity(rows + 1))


def _reads_whole(consumer: ir.Operation, operand: int, rows: int) -> bool:
    """Whether ``consumer`` reads its operand (a full-rank value) element by element."""
    if consumer.name == "linalg.fill" or len(_iterators(consumer)) != rows + 1:
        return False
    return _maps(consumer)[operand] == ir.AffineMap.get_identity(rows + 1)


def _is_anchor(op: ir.Operation, kind: str) -> bool:
    if kind != "elementwise" or op.name != "linalg.generic" or len(op.results) != 1:
        return False
    iters = _iterators(op)
    return len(iters) >= 2 and all("parallel" in i for i in iters)


def find_groups(module: ir.Module, kinds: dict[int, str]) -> dict[int, list[int]]:
    """anchor sid -> the sids of its fused producers, consumers first (program order reversed).

    ``kinds``: the tagged ops' schedule kinds (sid -> kind). A group has a row reduction.
    """
    groups: dict[int, list[int]] = {}
    taken: list[ir.Operation] = []
    for fn in module.body.operations:
        if fn.operation.name != "func.func":
            continue
        for block in fn.operation.regions[0].blocks:
            # Program order by sid: _tag numbers a block's ops in order.
            for op in reversed([c.operation for c in block.operations]):
                sid = _sid(op)
                if (sid is None or not _is_anchor(op, kinds[sid])
                        or any(op == t for t in taken)):
                    continue
                members = _collect(op, len(_iterators(op)) - 1, taken, kinds)
                if any(m.name == "linalg.generic" and _is_row_op(m, len(_iterators(op)) - 1)
                       and len(_iterators(m)) == len(_iterators(op)) for m in members):
                    groups[sid] = sorted((_sid(m) for m in members), reverse=True)
                    taken += members
    return groups


def _sid(op: ir.Operation) -> int | None:
    return ir.IntegerAttr(op.attributes[SID]).value if SID in op.attributes else None


def _collect(anchor: ir.Operation, rows: int, taken: list[ir.Operation],
             kinds: dict[int, str]) -> list[ir.Operation]:
    """The producers of ``anchor`` that join its group (see the module docstring); none of
    ``taken`` (members of other groups), and only plain elementwise ops and reductions (not
    a matmul's epilogue: its matmul stays with it)."""
    group: list[ir.Operation] = [anchor]
    changed = True
    while changed:  # until no more join: a producer joins once all its users have
        changed = False
        for consumer in list(group):
            n_in = len(consumer.operands) - len(consumer.results)
            for i, v in enumerate(consumer.operands):
                p = as_op(v.owner)
                if (p is None or _sid(p) is None or any(p == g for g in group + taken)
                        or kinds[_sid(p)] not in ("elementwise", "reduction")):
                    continue
                if p.name == "linalg.fill":
                    # Only as the init of a row op of the group.
                    ok = i >= n_in and consumer != anchor
                elif i < n_in and _is_row_op(p, rows):
                    ok = _reads_as_row(consumer, i, rows)
                else:
                    ok = i < n_in and _is_full_op(p, rows) and _reads_whole(consumer, i, rows)
                if ok and all(any(as_op(u.owner) == g for g in group)
                              for u in p.results[0].uses):
                    group.append(p)
                    changed = True
    return group[1:]


def _split_axis(anchor: ir.Operation, n: int) -> int | None:
    """The row loop to split over ``n`` threads: the first one with at least ``n`` rows (or a
    symbolic size), if the op is large enough to pay for the fork; else None."""
    from max.compiler.pipelines.cpu_threads import MIN_PARALLEL_ELEMENTS, _loop_sizes

    sizes = _loop_sizes(anchor)
    dyn = ir.ShapedType.get_dynamic_size()
    total = 1
    for s in sizes:
        total *= MIN_PARALLEL_ELEMENTS if s == dyn else s
    if total < MIN_PARALLEL_ELEMENTS:
        return None
    for axis, s in enumerate(sizes[:-1]):
        if s == dyn or s >= n:
            return axis
    return None


def script(module: ir.Module, groups: dict[int, list[int]], n: int) -> str:
    """Transform script: each group's anchor split over threads (if ``n`` > 1 and it pays),
    then tiled to single rows, its producers fused at both levels."""
    anchors = _ops_by_sid(module, set(groups))
    s = ""
    for sid, members in sorted(groups.items()):
        loops = len(_iterators(anchors[sid]))
        match = (lambda k: f"transform.structured.match attributes{{{SID} = {k} : i64}} in %root"
                 f" : ({ts.ANY}) -> {ts.ANY}\n")
        body = f"    %g{sid} = {match(sid)}"
        for k in members:  # every handle before any tiling (see cpu_threads.parallel_script)
            body += f"    %g{sid}p{k} = {match(k)}"
        target = f"%g{sid}"
        producers = {k: f"%g{sid}p{k}" for k in members}
        axis = _split_axis(anchors[sid], n) if n > 1 else None
        if axis is not None:
            # Symbolic sizes: as many parts as the run-time work pays for (thread_gate).
            from max.compiler.pipelines.thread_gate import (forall_text, match_threads,
                                                            runtime_threads)

            handle = None
            if runtime_threads(anchors[sid], "elementwise", axis, n, sid):
                handle = f"%g{sid}nt"
                body += match_threads(sid, handle[1:])
            body += (f"    %g{sid}t, %g{sid}f = transform.structured.tile_using_forall {target} "
                     f"{forall_text(loops, axis, n, handle)}\n")
            body += _fuse(producers, f"%g{sid}f", f"g{sid}f")
            target = f"%g{sid}t"
        # Rows of 1; a static size-1 loop is not tiled (it would make no loop to fuse into).
        from max.compiler.pipelines.cpu_threads import _loop_sizes

        rows = [0 if size == 1 else 1 for size in _loop_sizes(anchors[sid])[:-1]] + [0]
        nl = sum(rows)
        if nl:
            handles = "".join(f", {ts.ANY}" for _ in range(nl))
            body += (f"    %g{sid}r, %g{sid}l:{nl} = transform.structured.tile_using_for "
                     f"{target} tile_sizes {rows} : ({ts.ANY}) -> ({ts.ANY}{handles})\n")
            body += _fuse(producers, f"%g{sid}l#{nl - 1}", f"g{sid}l")
            body += f'    transform.annotate %g{sid}l#{nl - 1} "mo.row_loop" : {ts.ANY}\n'
            # A fused full-size producer (softmax's exp) writes a slice of a full-size
            # tensor.empty: made a row-sized empty, it bufferizes to one row buffer
            # (hoist_row_buffers), not a full-size one that the rows stream through.
            body += (f"    transform.apply_patterns to %g{sid}l#{nl - 1} {{\n"
                     f"      transform.apply_patterns.tensor.fold_tensor_empty\n"
                     f"    }} : {ts.ANY}\n")
        s += ts.suppress(body)
    return ts.HEADER + s + ts.FOOTER


def _fuse(producers: dict[int, str], into: str, name: str) -> str:
    """Fuses each producer (consumers first) into the loop ``into``; updates the handles to
    the fused clones.

    fuse_into_containing_op tiles a producer once per use inside the loop, so in a diamond
    (softmax's scores, read by the max and by the exp) the copies multiplied at each step,
    and the diagnostic it prints for every attempt printed the growing loop: a 4-D softmax
    group went from 7 ops to 83 before the schedule's CSE, 0.42 s. CSE inside the loop after
    each fusion keeps one copy (0.05 s); the handles follow the ops it keeps.
    """
    s = ""
    for k, handle in producers.items():
        s += (f"    %{name}{k}, %{name}c{k} = transform.structured.fuse_into_containing_op "
              f"{handle} into {into} : ({ts.ANY}, {ts.ANY}) -> ({ts.ANY}, {ts.ANY})\n"
              f"    transform.apply_cse to {into} : {ts.ANY}\n")
        producers[k] = f"%{name}{k}"
        # ``into`` stays valid (fusing through slices does not replace the loop); the returned
        # containing handle is empty where the producer had nothing left to fuse.
    return s


def _ops_by_sid(module: ir.Module, sids: set[int]) -> dict[int, ir.Operation]:
    from max.compiler.pipelines.cpu_threads import _ops_by_sid

    return _ops_by_sid(module, sids)


def fuse_rows(module: ir.Module, kinds: dict[int, str], n: int) -> set[int]:
    """Applies the row groups of ``module``; returns the sids of their members (anchors too),
    which cpu_threads must not split on their own."""
    groups = find_groups(module, kinds)
    if not groups:
        return set()
    from max.compiler.pipelines.outline import apply_outlined, renumber_marks

    ops = _ops_by_sid(module, set(groups) | {k for m in groups.values() for k in m})
    # Each group on its own (outline.py): a fusion's cost grows with the module it is in.
    # Outlined, a group's sids are numbered from 0, so the same group in another layer
    # prints the same and takes the first one's result (a 4-D softmax group with symbolic
    # sizes took 0.5 s, most of it fuse_into_containing_op printing ops for diagnostics).
    done: dict[str, ir.Module] = {}
    for sid, members in sorted(groups.items()):
        real = sorted([*members, sid])  # sids number ops in order
        local = {s: i for i, s in enumerate(real)}
        group = {local[sid]: [local[k] for k in members]}
        back = {i: s for s, i in local.items()}

        def run(small: ir.Module, group: dict[int, list[int]] = group,
                local: dict[int, int] = local) -> ir.Module | None:
            renumber_marks(small.operation, local)
            key = small.operation.get_asm(assume_verified=True)
            if key in done:
                return done[key]
            ts.apply(small, script(small, group, n))
            done[key] = small
            return None

        if not apply_outlined([ops[k] for k in real], run,
                              lambda op, back=back: renumber_marks(op, back)):
            ts.apply(module, script(module, {sid: members}, n))
    ts.run_passes(module, ts.CANON)  # the fused producers' originals, now unused
    return set(groups) | {k for members in groups.values() for k in members}


__all__ = ["find_groups", "fuse_rows", "hoist_row_buffers", "prefetch_next_rows", "script"]


# ----------------------------------------------------------------------------- row buffers

_VIEWS = ("memref.subview", "memref.cast", "memref.reinterpret_cast", "memref.expand_shape",
          "memref.collapse_shape")


def _stays_local(value: ir.Value, loop: ir.Operation) -> bool:
    """Whether every use of ``value`` (through views) is inside ``loop`` and none is a yield."""
    for use in value.uses:
        owner = as_op(use.owner)
        if owner is None or owner.name in ("scf.yield", "func.return", "memref.dealloc"):
            return False
        parent = owner.parent
        while parent is not None and parent != loop:
            parent = parent.parent
        if parent is None:
            return False
        if owner.name in _VIEWS and not _stays_local(owner.results[0], loop):
            return False
    return True


def hoist_row_buffers(module: ir.Module) -> int:
    """Moves each ``memref.alloc`` made in an ``scf.for`` body (a fused producer's row,
    softmax's ``exp(x - max)``, a reduction's partial sums), whose sizes are known before
    the loop, in front of the outermost enclosing ``scf.for`` of the same thread: one
    allocation per thread instead of a malloc/free per row. Only buffers whose
    every use stays in the loop are moved: each iteration writes before it reads (bufferized
    tensors), so one buffer serves them all. Never out of an ``scf.forall`` (each thread needs
    its own). Returns how many were moved (the dealloc pipeline frees them after the loop)."""
    allocs: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "memref.alloc" and op.parent is not None and op.parent.name == "scf.for":
            allocs.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    moved = 0
    for alloc in allocs:
        outer = alloc.parent
        while outer.parent is not None and outer.parent.name == "scf.for":
            outer = outer.parent
        # Sizes known before the loop (a symbolic row length), and only local uses.
        if any(defined_within(v, outer) for v in alloc.operands) or not _stays_local(
                alloc.results[0], outer):
            continue
        alloc.move_before(outer)
        moved += 1
    return moved


# ----------------------------------------------------------------------------- prefetch

_LINE = 16  # f32 per 64-byte cache line


def _row_view(loop: ir.Operation) -> tuple[ir.Operation, int] | None:
    """The row loop's ``memref.subview`` of an outer f32 memref at the loop's row, one row
    long: (the subview, the source dim the row index sits in)."""
    iv = loop.regions[0].blocks[0].arguments[0]
    for child in loop.regions[0].blocks[0].operations:
        op = child.operation
        if op.name != "memref.subview" or defined_within(op.operands[0], loop):
            continue
        src = ir.MemRefType(op.operands[0].type)
        if str(src.element_type) != "f32" or src.rank < 2:
            continue
        static = list(ir.DenseI64ArrayAttr(op.attributes["static_offsets"]))
        dyn = ir.ShapedType.get_dynamic_size()
        dynamic = [i for i, s in enumerate(static) if s == dyn]
        offsets = list(op.operands)[1:1 + len(dynamic)]
        if len(dynamic) == 1 and offsets[0] == iv and static[-1] == 0 and dynamic[0] < src.rank - 1:
            return op, dynamic[0]
    return None


def _column_loops(loop: ir.Operation, view: ir.Operation) -> list[ir.Operation]:
    """The loops directly in ``loop``'s body (step 64) that read slices of ``view``."""
    found = []
    for child in loop.regions[0].blocks[0].operations:
        op = child.operation
        if op.name != "scf.for" or not any(defined_within(as_op(u.owner).results[0], op)
                                          for u in view.results[0].uses
                                          if as_op(u.owner).name == "memref.subview"):
            continue
        step = op.operands[2].owner
        step = as_op(step)
        if (step is not None and step.name == "arith.constant"
                and ir.IntegerAttr(step.attributes["value"]).value == 64):
            found.append(op)
    return found


L1_BYTES = 48 << 10  # L1 data cache of one core (Sapphire/Granite Rapids: 48 KiB)


def _locality(loop: ir.Operation, view: ir.Operation) -> int:
    """The prefetch's locality: 3 (``prefetcht0``, into L1) where the rows the loop touches
    (every memref it reads or writes through a view, the input row, and the next one) fit in
    L1 together; else 2 (``prefetcht1``, into L2). softmax 512x4096 with its exp written
    into the output row (row_output.py): input, output and next row, 48 KiB: into L1, 6 %
    faster than into L2 (same-process A/B, fastest samples 0.365 vs 0.389 ms). Layer norm's
    gamma and beta make it 80 KiB: into L1 was slower there (0.417 vs 0.406 ms)."""
    shape = ir.MemRefType(view.results[0].type).shape
    if any(s == ir.ShapedType.get_dynamic_size() for s in shape):
        return 2
    row_bytes = 4
    for s in shape:
        row_bytes *= s
    sources: list[ir.Value] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "memref.subview":
            src = op.operands[0]
            owner = src.owner
            base = owner.owner if isinstance(owner, ir.Block) else as_op(owner)
            if not is_within(base, loop) and all(src != s for s in sources):
                sources.append(src)
        return ir.WalkResult.ADVANCE

    loop.walk(visit)
    return 3 if (len(sources) + 1) * row_bytes <= L1_BYTES else 2


def prefetch_next_rows(module: ir.Module) -> int:
    """In each row loop, the second pass over the row (softmax's exp, layer norm's variance:
    compute-bound, on a row already in L1) prefetches the next row, a line per 16 columns:
    the first pass of the next row (max, sum: bound by memory) then finds it in cache, and
    memory works while the core computes. Into L1 where the loop's rows fit there with the
    next one, else into L2 (:func:`_locality`). Returns the loops changed."""
    from mlir.dialects import arith, memref

    loops: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "scf.for" and "mo.row_loop" in op.attributes:
            loops.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    changed = 0
    index = ir.IndexType.get()
    for loop in loops:
        found = _row_view(loop)
        if found is None:
            continue
        view, dim = found
        columns = _column_loops(loop, view)
        if len(columns) < 2:
            continue
        src = view.operands[0]
        static = list(ir.DenseI64ArrayAttr(view.attributes["static_offsets"]))
        iv = loop.regions[0].blocks[0].arguments[0]
        col_loop = columns[1]
        locality = _locality(loop, view)
        body = col_loop.regions[0].blocks[0]
        with ir.InsertionPoint(body.operations[0]), loop.location:
            one = arith.constant(index, 1)
            last = arith.subi(memref.dim(src, arith.constant(index, dim)), one)
            nxt = arith.minsi(arith.addi(iv, one), last)  # the last row prefetches itself
            col = body.arguments[0]
            for k in range(0, 64, _LINE):
                c = arith.addi(col, arith.constant(index, k))
                idx = [nxt if i == dim else c if i == len(static) - 1
                       else arith.constant(index, s) for i, s in enumerate(static)]
                memref.prefetch(src, idx, False, locality, True)
        changed += 1
    return changed
