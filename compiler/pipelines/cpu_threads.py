"""Several cores for the heavy ops: ``scf.forall`` -> OpenMP (``__kmpc_*``) through libiomp5.

MLIR's OpenMP lowering calls the LLVM OpenMP ABI (``__kmpc_fork_call``, ...). The system
has only libgomp, which lacks it; PyPI's ``intel-openmp`` ships ``libiomp5.so``, which has it.
Where that library cannot be found (or loaded), nothing here changes the module: the
single-thread schedule is what the caller gets, never an error.

The schedule (see :mod:`cpu_schedule`) calls :func:`parallelize` after tagging: each large
enough op is split over its first loop (rows) into one ``scf.forall`` iteration per thread:
matmuls (the zero fill of C fused inside), fused elementwise generics, and last-axis row
reductions (their init fill fused inside; softmax and layer norm are chains of these). The
usual cache/register tiling then runs on each thread's part (the tags survive tiling, so the
per-op schedules find the ops inside the forall). After bufferization and the dealloc
pipeline, :data:`FORALL_TO_OPENMP` turns each forall into ``omp.parallel`` + ``omp.wsloop``
(dealloc + canonicalize first: otherwise constants land inside ``omp.wsloop`` and the
verifier fails, MLIR-FACTS), and :data:`LOWER_TO_LLVM_OMP` lowers ``memref.alloca_scope``
before ``convert-scf-to-cf``. :func:`link_flags` links the ``.so`` against libiomp5 with an
rpath, so that loading the model needs no environment. ``MAX_CPU_THREADS=1`` turns it off.
An op with symbolic sizes is split into a run-time number of parts, 1 (no fork) where its
actual work is below the thresholds here (:mod:`thread_gate`). A reduction whose split loop
is symbolic (a batch: 1 per decode step) also splits a second loop into the parts the first
leaves idle (attention's product-sums over a KV cache then use both cores at batch 1:
a SmolLM2 decode step 6.44 -> 6.29 ms, in-process A/B).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path
from typing import Any

from mlir import ir

from max.compiler.pipelines.cpu import SOFT_BF16
from max.compiler.pipelines import transform_script as ts

OMP_LIB = "libiomp5.so"
THREADS_ENV = "MAX_CPU_THREADS"  # an int >= 1; 1 = the single-thread schedule
# Below this many multiply-adds a fork/join (a few to tens of microseconds, waking the pool)
# costs about what the second core saves.
MIN_PARALLEL_MACS = 1 << 20
MIN_ROWS = 16  # the rows of one register tile (8) per thread at least
# Elementwise ops and row reductions: ~0.3-1 ns an element on one core, so below this a
# fork/join costs about what it saves.
MIN_PARALLEL_ELEMENTS = 1 << 16

# Everything as cpu.LOWER_TO_LLVM, but alloca scopes (which convert-scf-to-openmp puts around
# each wsloop body) are lowered by finalize-memref-to-llvm before convert-scf-to-cf, and the
# omp ops' regions get LLVM types in convert-to-llvm (the OpenMP dialect's patterns).
FORALL_TO_OPENMP = "scf-forall-to-parallel,canonicalize,convert-scf-to-openmp{{num-threads={n}}}"
LOWER_TO_LLVM_OMP = (
    "func.func(convert-linalg-to-loops,fold-memref-alias-ops,lower-affine,"
    "convert-vector-to-scf{full-unroll=true}),convert-math-to-funcs{convert-ctlz=0},"
    f"func.func(expand-strided-metadata,lower-affine,{SOFT_BF16},convert-vector-to-llvm),"
    "finalize-memref-to-llvm,func.func(convert-scf-to-cf,convert-math-to-llvm),"
    "convert-math-to-libm,convert-to-llvm,reconcile-unrealized-casts"
)



def _candidate_dirs() -> list[Path]:
    """Where pip puts libiomp5.so: ``<prefix>/lib`` (a data file of the wheel)."""
    dirs = [Path(sys.prefix) / "lib", Path(sys.base_prefix) / "lib"]
    try:
        from importlib import metadata

        for f in metadata.distribution("intel-openmp").files or ():
            if f.name == OMP_LIB:
                dirs.insert(0, Path(str(f.locate())).resolve().parent)
    except Exception:  # noqa: BLE001 - not installed, or odd metadata: try the prefixes
        pass
    return dirs


@functools.lru_cache(maxsize=1)
def omp_library_dir() -> Path | None:
    """The folder holding a loadable libiomp5.so that exports ``__kmpc_fork_call``, or None."""
    for d in _candidate_dirs():
        lib = d / OMP_LIB
        if not lib.is_file():
            continue
        try:  # a broken or foreign-architecture library must not reach the linker
            if hasattr(ctypes.CDLL(str(lib), mode=os.RTLD_LOCAL), "__kmpc_fork_call"):
                return d
        except OSError:
            continue
    return None


def num_threads() -> int:
    """Threads the compiled code will use: ``MAX_CPU_THREADS``, else the CPUs we may run on.

    1 where libiomp5 is missing: the single-thread schedule.
    """
    env = os.environ.get(THREADS_ENV, "")
    if env.strip().isdigit() and int(env) >= 1:
        n = int(env)
    else:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n = max(1, min(int(n or 1), 64))
    return n if n > 1 and omp_library_dir() is not None else 1


def _loop_sizes(op: ir.Operation) -> list[int]:
    """Static size of each loop of a linalg.generic (dynamic size where unknown)."""
    maps = [ir.AffineMapAttr(a).value for a in ir.ArrayAttr(op.attributes["indexing_maps"])]
    n_loops = len(ir.ArrayAttr(op.attributes["iterator_types"]))
    dyn = ir.ShapedType.get_dynamic_size()
    sizes = [dyn] * n_loops
    for v, m in zip(op.operands, maps):
        if not isinstance(v.type, ir.ShapedType):
            continue
        shape = ir.ShapedType(v.type).shape
        for expr, size in zip(m.results, shape):
            if isinstance(expr, ir.AffineDimExpr) and size != dyn:
                sizes[ir.AffineDimExpr(expr).position] = size
    return sizes


def _rows_worth_it(sizes: list[int], n: int) -> bool:
    """Whether splitting loop 0 (rows) of an elementwise op or row reduction over ``n`` pays."""
    dyn = ir.ShapedType.get_dynamic_size()
    if len(sizes) < 1 or (sizes[0] != dyn and sizes[0] < n):
        return False
    rest = 1
    for s in sizes[1:]:
        if s == dyn:
            return True  # unknown row length and at least n rows: a large tensor, likely
        rest *= s
    if sizes[0] == dyn:
        return rest >= MIN_PARALLEL_ELEMENTS // 16  # per row: still worth a fork at 16 rows
    return sizes[0] * rest >= MIN_PARALLEL_ELEMENTS


# (number of loops, operand whose producer to fuse or None (a tuple: a chain, each the next
# producer's operand; a list: several chains, each from the op), loop to split, its tile size
# or 0 for n equal parts)
Plan = tuple[int, int | tuple[int, ...] | list[tuple[int, ...]] | None, int, int]


def _plan(op: ir.Operation, kind: str, n: int) -> Plan | None:
    """How ``op`` goes on threads, or None."""
    if kind in ("matmul", "epilogue", "bmm"):  # rows, or columns for few rows (matmul_schedule)
        from max.compiler.pipelines.matmul_schedule import thread_plan

        return thread_plan(op, kind, n, MIN_PARALLEL_MACS, MIN_ROWS)
    if kind == "pmatmul":
        from max.compiler.pipelines.matmul_pack import thread_plan as panel_plan

        return panel_plan(op, n, MIN_PARALLEL_MACS)
    if kind == "pepilogue":
        from max.compiler.pipelines.panel_epilogue import thread_plan as epilogue_plan

        return epilogue_plan(op, n, MIN_PARALLEL_MACS)
    if kind in ("conv", "window"):
        # Split the batch, or else the output rows; the init fill goes with each part.
        from max.compiler.pipelines.conv_schedule import conv_macs

        out = ir.RankedTensorType(op.results[0].type).shape
        batch, rows = out[:2]
        # A conv does C multiply-adds per tap and output; depthwise convs and pools one, so
        # they are counted like elementwise ops, by their outputs.
        dyn = ir.ShapedType.get_dynamic_size()
        big = (conv_macs(op) >= MIN_PARALLEL_MACS if kind == "conv"
               else max(out[0], 1) * max(out[1], 1) * max(out[2], 1) * out[3]
               >= MIN_PARALLEL_ELEMENTS)
        if dyn in (rows, out[2]):  # a symbolic height or width: most likely a large image
            big = True
        if not big or (batch != dyn and rows != dyn and max(batch, rows) < n):
            return None
        loops = 7 if kind == "conv" else 6  # (n, oh, ow, f, kh, kw, c) / (n, oh, ow, c, kh, kw)
        axis = 0 if batch >= n else 1
        # Static rows: a tile size (equal static parts); symbolic: n parts.
        size = (batch, rows)[axis]
        return (loops, len(op.operands) - 1, axis, -(-size // n) if size != dyn else 0)
    if op.name in ("linalg.copy", "linalg.fill"):  # of convs and pools: by rows
        from max.compiler.pipelines.conv_schedule import copy_thread_plan

        return copy_thread_plan(op, kind, n, MIN_PARALLEL_ELEMENTS)
    if op.name != "linalg.generic":
        return None  # fills: fused into their consumer's forall, or cheap
    from max.compiler.pipelines.matmul_init import INIT

    if INIT in op.attributes:
        return None  # a matmul's initial sum: fused into the matmul's forall, as a fill
    sizes = _loop_sizes(op)
    from max.compiler.pipelines import layout_schedule

    if kind in layout_schedule.LAYOUT_KINDS:  # split a parallel loop, not loop 0
        total = 1
        for s in sizes:
            total *= s if s != ir.ShapedType.get_dynamic_size() else MIN_PARALLEL_ELEMENTS
        if 0 in sizes or total < MIN_PARALLEL_ELEMENTS:
            return None
        return layout_schedule.thread_plan(op, kind, sizes, n)
    axis = _split_loop(op, sizes)
    if 0 in sizes or axis is None or not _rows_worth_it(sizes[axis:], n):
        return None  # (0: no work, and tiling it aborts MLIR)
    # A reduction's init is a fill: each thread fills its own rows. An elementwise op's init
    # is a tensor.empty, nothing to fuse.
    return (len(sizes), len(op.operands) - 1 if kind == "reduction" else None, axis, 0)


def _split_loop(op: ir.Operation, sizes: list[int]) -> int | None:
    """The loop an elementwise op or row reduction splits over threads: the first one not of
    static size 1 (a ``[1, seq, hidden]`` activation splits its rows, not its batch of one),
    or None where that loop is not parallel."""
    axis = 0
    while axis < len(sizes) - 1 and sizes[axis] == 1:
        axis += 1
    iterators = ir.ArrayAttr(op.attributes["iterator_types"])
    return axis if "parallel" in str(iterators[axis]) else None


def _ops_by_sid(module: ir.Module, sids: set[int]) -> dict[int, ir.Operation]:
    found: dict[int, ir.Operation] = {}
    for fn in module.body.operations:
        for block in fn.operation.regions[0].blocks if fn.operation.regions else ():
            for child in block.operations:
                op = child.operation
                if "mo.sid" in op.attributes:
                    sid = ir.IntegerAttr(op.attributes["mo.sid"]).value
                    if sid in sids:
                        found[sid] = op
    return found


def _chains(operand: Any) -> list[tuple[int, ...]]:
    """A plan's producers to fuse, as operand chains from the op: a list of chains (a panel
    matmul's fill and B copy), one chain, one operand, or None."""
    return (operand if isinstance(operand, list) else [] if operand is None
            else [(operand,)] if isinstance(operand, int) else [operand])


def _fused_producers(op: ir.Operation, operand: Any) -> list[ir.Operation]:
    """The ops the split of ``op`` fuses (its plan's chains, as the script walks them)."""
    found: list[ir.Operation] = []
    for chain in _chains(operand):
        cur = op
        for index in chain:
            if index >= len(cur.operands):
                break
            owner = cur.operands[index].owner
            if isinstance(owner, ir.Block):
                break
            cur = owner.operation if hasattr(owner, "operation") else owner
            if cur not in found:
                found.append(cur)
    return found


def parallel_script(plans: dict[int, Plan], n: int, dynamic: frozenset[int] = frozenset(),
                    seconds: dict[int, int] | None = None) -> str:
    """Transform script: split one loop of each planned op into ``n`` forall iterations.

    ``plans``: sid -> :data:`Plan`. The producer of that operand (the fill that zeroes a
    matmul's C or a reduction's accumulator) is fused into the forall, so that each thread
    fills its own rows, in cache; if fusing fails, the fill runs before the forall: still
    correct. Each op's split is its own ``failures(suppress)`` sequence. ``dynamic``: the
    sids whose number of parts is their run-time thread count
    (:func:`thread_gate.runtime_threads`, inserted before the op) instead of ``n``.
    ``seconds``: sid -> a second loop split into its run-time parts (those sids are in
    ``dynamic``; see :func:`thread_gate.second_axis`).
    """
    seconds = seconds or {}
    from max.compiler.pipelines.thread_gate import NT2_ATTR, forall_text, match_threads

    s = ""
    for sid, (loops, operand, axis, size) in sorted(plans.items()):
        body = (f"    %m{sid} = transform.structured.match attributes{{mo.sid = {sid} : i64}} "
                f"in %root : ({ts.ANY}) -> {ts.ANY}\n")
        if size:
            threads = [0] * loops
            threads[axis] = size
            split = f"tile_sizes {threads} : ({ts.ANY}) -> ({ts.ANY}, {ts.ANY})"
        else:
            handle = f"%nt{sid}" if sid in dynamic else None
            if handle:
                body += match_threads(sid, handle[1:])
            second = None
            if handle and sid in seconds:
                second = (seconds[sid], f"%nu{sid}")
                body += match_threads(sid, f"nu{sid}", NT2_ATTR)
            split = forall_text(loops, axis, n, handle, second)
        chains = _chains(operand)
        # Every producer's handle is taken before tiling: after it, the fused op's operand
        # is a slice of its producer, not the producer itself.
        names = []
        for c, chain in enumerate(chains):
            for j, nxt in enumerate(chain):
                of = f"%m{sid}" if j == 0 else names[-1]
                names.append(f"%i{sid}_{c}_{j}")
                body += (f"    {names[-1]} = transform.get_producer_of_operand {of}[{nxt}] : "
                         f"({ts.ANY}) -> {ts.ANY}\n")
        body += (f"    %t{sid}, %fa{sid} = transform.structured.tile_using_forall %m{sid} "
                 f"{split}\n")
        fuse = ""
        for name in names:
            fuse += (f"    %ff{name[1:]}, %fb{name[1:]} = transform.structured."
                     f"fuse_into_containing_op {name} into %fa{sid} : ({ts.ANY}, {ts.ANY}) -> "
                     f"({ts.ANY}, {ts.ANY})\n")
        if fuse:
            body += ts.suppress(fuse)
        s += ts.suppress(body)
    return ts.HEADER + s + ts.FOOTER


def parallelize(module: ir.Module, tags: dict[int, tuple[str, int, tuple[tuple[int, ...], ...]]],
                n: int | None = None) -> int:
    """Wraps the large tagged ops in an ``n``-thread ``scf.forall``; returns how many.

    ``n`` None: :func:`num_threads`. Nothing happens where libiomp5 is missing.
    """
    n = num_threads() if n is None else n
    if n <= 1 or omp_library_dir() is None:
        return 0
    ops = _ops_by_sid(module, set(tags))
    plans = {sid: plan for sid, op in ops.items()
             if (plan := _plan(op, tags[sid][0], n)) is not None}
    if not plans:
        return 0
    from max.compiler.pipelines.thread_gate import runtime_threads, second_axis

    # Symbolic sizes: the number of parts is decided at run time from the actual work; a
    # reduction whose split loop is symbolic (a batch, 1 at run time) also splits a second
    # loop among the threads the first leaves idle.
    seconds: dict[int, int] = {}
    for sid, (_, _, axis, size) in plans.items():
        if not size and (ax := second_axis(ops[sid], tags[sid][0], axis, n)) is not None:
            seconds[sid] = ax
    dynamic = frozenset(sid for sid, (_, _, axis, size) in plans.items()
                        if not size and runtime_threads(ops[sid], tags[sid][0], axis, n, sid,
                                                        seconds.get(sid)))
    seconds = {sid: ax for sid, ax in seconds.items() if sid in dynamic}
    rest = _apply_outlined(module, ops, plans, n, dynamic, seconds)
    if rest:
        ts.apply(module, parallel_script(rest, n, dynamic & set(rest),
                                       {s: a for s, a in seconds.items() if s in rest}))
    return len(plans)


def _apply_outlined(module: ir.Module, ops: dict[int, ir.Operation], plans: dict[int, Plan],
                    n: int, dynamic: frozenset[int], seconds: dict[int, int]
                    ) -> dict[int, Plan]:
    """Applies each plan to its op, the producers it fuses and its run-time thread counts
    outlined into a module of their own (outline.py); returns the plans it could not.

    In the whole module, every ``fuse_into_containing_op`` printed ops for a diagnostic, a
    cost that grows with the module, and every op's match walked it: the split of a 6-layer
    MiniLM took 1.2-1.9 s, growing with the square of its layers. Outlined with their marks
    numbered from 0, each layer's ops print as the first layer's did and take that result.
    Plans whose ops overlap another's (a planned op fused into another's forall, a shared
    producer) or do not fit one block are left to the caller's whole-module script.
    """
    from max.compiler.pipelines.outline import apply_outlined, marks_in, renumber_marks
    from max.compiler.pipelines.thread_gate import NT2_ATTR, NT_ATTR

    # Everything about the ops is read before the first one is outlined: once ops were
    # erased, looking up the bindings' op objects in these dictionaries failed (KeyError).
    position: dict[ir.Operation, tuple[int, int]] = {}  # (block, index in it)
    counts: dict[tuple[str, int], ir.Operation] = {}  # (mark, sid) -> run-time thread count
    blocks = [b for fn in module.body.operations for b in
              (fn.operation.regions[0].blocks if fn.operation.regions else ())]
    for b, block in enumerate(blocks):
        for i, child in enumerate(block.operations):
            op = child.operation
            position[op] = (b, i)
            for name in (NT_ATTR, NT2_ATTR):
                if name in op.attributes:
                    counts[(name, ir.IntegerAttr(op.attributes[name]).value)] = op
    members: dict[int, list[ir.Operation]] = {}
    taken: dict[tuple[int, int], int] = {}  # position -> how many plans' members it is
    for sid, plan in plans.items():
        found = [*_fused_producers(ops[sid], plan[1]),
                 *(counts[(a, sid)] for a in (NT_ATTR, NT2_ATTR) if (a, sid) in counts),
                 ops[sid]]
        if any(op not in position for op in found):
            continue
        found.sort(key=position.__getitem__)  # program order
        if found[-1] != ops[sid] or len({position[op][0] for op in found}) > 1:
            continue
        members[sid] = found
        for op in found:
            taken[position[op]] = taken.get(position[op], 0) + 1
    overlapping = {sid for sid, found in members.items()
                   if any(taken[position[op]] > 1 for op in found)}
    marks = {sid: marks_in(found) for sid, found in members.items()}
    rest: dict[int, Plan] = {}
    done: dict[str, ir.Module] = {}
    for sid in sorted(plans):
        if sid not in members or sid in overlapping:
            rest[sid] = plans[sid]
            continue
        found = members[sid]
        local = {s: i for i, s in enumerate(marks[sid])}
        back = {i: s for s, i in local.items()}
        me = local[sid]
        plan = (plans[sid], sid in dynamic, seconds.get(sid))

        def run(small: ir.Module, local: dict[int, int] = local, me: int = me,
                plan: tuple = plan) -> ir.Module | None:
            renumber_marks(small.operation, local)
            key = repr(plan) + small.operation.get_asm(assume_verified=True)
            if key in done:
                return done[key]
            ts.apply(small, parallel_script({me: plan[0]}, n,
                                          frozenset({me}) if plan[1] else frozenset(),
                                          {} if plan[2] is None else {me: plan[2]}))
            done[key] = small
            return None

        if not apply_outlined(found, run, lambda op, back=back: renumber_marks(op, back)):
            rest[sid] = plans[sid]
    return rest


def has_forall(module: ir.Module) -> bool:
    """Whether the module still holds an ``scf.forall`` (ours: the schedule makes no other)."""
    found = False

    def visit(op: ir.Operation) -> ir.WalkResult:
        nonlocal found
        found = op.name == "scf.forall"
        return ir.WalkResult.INTERRUPT if found else ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return found


def link_flags(llvm_ir: str) -> list[str]:
    """Linker flags for a module's LLVM IR: libiomp5 (with an rpath) if it calls ``__kmpc_*``."""
    if "@__kmpc_" not in llvm_ir:
        return []
    d = omp_library_dir()
    if d is None:
        # parallelize() only runs where the library was found: this is a broken install.
        raise RuntimeError(f"the compiled model calls OpenMP but {OMP_LIB} is not found")
    return [f"-L{d}", "-liomp5", f"-Wl,-rpath,{d}"]


__all__ = ["FORALL_TO_OPENMP", "LOWER_TO_LLVM_OMP", "has_forall", "link_flags",
           "num_threads", "omp_library_dir", "parallelize"]
