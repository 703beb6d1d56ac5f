"""Streaming (non-temporal) stores into large outputs that the graph only writes.

A plain store to a line that is not in cache first reads the line (read-for-ownership), so an
elementwise kernel that reads three 64 MiB inputs and writes one 64 MiB output moves 320 MiB,
not 256. A non-temporal store (``vmovntps``) writes the line without reading it and without
keeping it in cache: right for an output far larger than the caches that this kernel does not
read back. Wrong for anything read back soon (a softmax that normalises its output in place, a
small output the next kernel consumes from L2), hence the conditions:

* the buffer is an *output* of the entry (destination-passing: one of the ``mo.num_outputs``
  arguments after the ``mo.num_inputs`` inputs), of static size at least :data:`MIN_BYTES`;
* nothing in the function reads it or writes it otherwise: its only uses are full-width
  vector stores (``vector.store``, or an unmasked in-bounds ``transfer_write`` of one
  contiguous run), so every line of it is written once and left. A masked remainder, a
  view that did not fold or a read keeps the whole buffer on plain stores;
* the address of the store is provably a multiple of :data:`ALIGNMENT` bytes when the buffer
  is: ``vmovntps`` needs an aligned address, and LLVM turns an unaligned non-temporal store
  into a sequence of scalar ``movnti`` (slower than the plain store). The proof is a small
  divisibility analysis of the store's indices (constants, ``affine.apply``, loop induction
  variables over their lower bound and step).

The runtime allocates every output of at least ``MIN_POOLED_BYTES`` (1 MiB) on a 64-byte
boundary (``runtime/pool.py``, pooled or not), and the code checks it anyway (see :func:`mark`).
Measured on the relu chain over 16M floats (2 threads, same run, fastest samples): 13.3 ms
plain, 10.4 ms streaming.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, llvm, memref, scf, vector

from max.compiler.pipelines.row_registers import const_index

#: Outputs smaller than this stay in cache for whoever reads them next. Measured on a Xeon
#: with 2 MiB of L2 per core and a large shared L3 (2 threads, same process): 8 MiB outputs
#: were 4-8% faster with plain stores (softmax and layer norm over 512 x 4096: 0.43 vs 0.465
#: ms, 0.38 vs 0.40), a 64 MiB one 25% slower (the relu chain: 7.4 vs 5.5 ms).
MIN_BYTES = 16 << 20
#: What the runtime guarantees for these outputs (a page; the cache line is what matters).
ALIGNMENT = 64
_CAP = 1 << 20  # "a multiple of everything" for the analysis (zero, large powers of two)

# Loops whose body one thread runs (the schedule's thread split, after mo-forall-to-openmp),
# and the alloca scope inside them (lowered to blocks that an scf.if region may not hold).
_THREAD_BODIES = {"omp.loop_nest", "scf.forall", "scf.parallel", "memref.alloca_scope"}


def _static_bytes(t: ir.Type) -> int:
    if not isinstance(t, ir.MemRefType) or not t.has_static_shape:
        return 0
    n = 1
    for d in t.shape:
        n *= d
    return n * max(getattr(t.element_type, "width", 0) // 8, 0)


def _direct_stores(arg: ir.Value) -> list[ir.Operation] | None:
    """The stores whose base is ``arg`` itself (``vector.store``, or a ``transfer_write`` that
    is one in disguise), or None if anything else uses it (a read, a view left unfolded, a
    masked or strided write, a copy)."""
    stores: list[ir.Operation] = []
    for use in arg.uses:
        op = use.owner.operation if hasattr(use.owner, "operation") else use.owner
        if use.operand_number != 1 or not (op.name == "vector.store" or _plain_write(op)):
            return None
        stores.append(op)
    return stores


def _plain_write(op: ir.Operation) -> bool:
    """A ``vector.transfer_write`` of one contiguous run: unmasked, in bounds, minor identity,
    every vector dim but the last of size 1."""
    if op.name != "vector.transfer_write" or len(list(op.operands)) != 2 + _rank(op):
        return False  # a mask operand
    vtype = ir.VectorType(op.operands[0].type)
    in_bounds = [ir.BoolAttr(a).value for a in ir.ArrayAttr(op.attributes["in_bounds"])]
    amap = ir.AffineMapAttr(op.attributes["permutation_map"]).value
    rank = _rank(op)
    minor = ir.AffineMap.get_minor_identity(rank, vtype.rank)
    return (all(in_bounds) and amap == minor and all(d == 1 for d in vtype.shape[:-1]))


def _rank(op: ir.Operation) -> int:
    return ir.MemRefType(op.operands[1].type).rank


def _as_store(op: ir.Operation) -> ir.Operation:
    """A :func:`_plain_write` rebuilt as the 1-D ``vector.store`` it is."""
    if op.name == "vector.store":
        return op
    value, base, *indices = op.operands
    vtype = ir.VectorType(value.type)
    with ir.InsertionPoint(op), op.location:
        flat = vector.shape_cast(ir.VectorType.get(vtype.shape[-1:], vtype.element_type), value)
        store = vector.StoreOp(flat, base, indices)
    op.erase()
    return store.operation


def _thread_level(op: ir.Operation) -> ir.Operation:
    """The ancestor of ``op`` that one thread runs as a whole: the op directly inside the body
    of a parallel loop, or of the function."""
    while True:
        parent = op.parent
        if parent.name in _THREAD_BODIES or parent.name == "func.func":
            return op
        op = parent


def _multiple(v: ir.Value, depth: int = 0) -> int:
    """A power of two (at most :data:`_CAP`) that the index ``v`` is known to be a multiple of;
    1 when nothing is known. Loop induction variables are multiples of what their lower bound
    and step both are."""
    if depth > 32:
        return 1
    c = const_index(v)
    if c is not None:
        return _pow2(c)
    owner = v.owner
    if isinstance(owner, ir.Block):
        return _induction_multiple(owner, v, depth)
    name = owner.name
    ops = list(owner.operands)
    if name == "affine.apply":
        amap = ir.AffineMapAttr(owner.attributes["map"]).value
        known = [_multiple(x, depth + 1) for x in ops]
        return min(_expr_multiple(amap.results[0], known, amap.n_dims), _CAP)
    if name in ("arith.addi", "arith.subi"):
        return min(_multiple(ops[0], depth + 1), _multiple(ops[1], depth + 1))
    if name == "arith.muli":
        return min(_multiple(ops[0], depth + 1) * _multiple(ops[1], depth + 1), _CAP)
    if name == "arith.index_cast":
        return _multiple(ops[0], depth + 1)
    return 1


def _induction_multiple(block: ir.Block, v: ir.BlockArgument, depth: int) -> int:
    parent = block.owner
    name = parent.name
    ops = list(parent.operands)
    idx = ir.BlockArgument(v).arg_number
    if name == "scf.for" and idx == 0:  # operands: lb, ub, step, inits; arguments: iv, iters
        return min(_multiple(ops[0], depth + 1), _multiple(ops[2], depth + 1))
    if name == "omp.loop_nest":  # lbs, ubs, steps
        n = len(list(block.arguments))
        if idx < n and len(ops) >= 3 * n:
            return min(_multiple(ops[idx], depth + 1), _multiple(ops[2 * n + idx], depth + 1))
    return 1


def _expr_multiple(e: ir.AffineExpr, known: list[int], n_dims: int) -> int:
    if isinstance(e, ir.AffineConstantExpr):
        return _pow2(e.value)
    if isinstance(e, ir.AffineDimExpr):
        return known[e.position]
    if isinstance(e, ir.AffineSymbolExpr):
        return known[n_dims + e.position]
    if isinstance(e, ir.AffineAddExpr):
        return min(_expr_multiple(e.lhs, known, n_dims), _expr_multiple(e.rhs, known, n_dims))
    if isinstance(e, ir.AffineMulExpr):
        return min(_expr_multiple(e.lhs, known, n_dims) * _expr_multiple(e.rhs, known, n_dims),
                   _CAP)
    return 1  # mod, floordiv, ceildiv: nothing known


def _pow2(c: int) -> int:
    return _CAP if c == 0 else min(c & -c, _CAP)


def _store_alignment(store: ir.Operation, arg_type: ir.MemRefType) -> int:
    """Bytes the address of ``store`` into the (64-byte aligned) output is a multiple of."""
    strides, offset = arg_type.get_strides_and_offset()
    if offset != 0:
        return 1
    elem = getattr(arg_type.element_type, "width", 8) // 8
    indices = list(store.operands)[2:2 + arg_type.rank]
    bytes_multiple = _CAP * elem
    for index, stride in zip(indices, strides):
        bytes_multiple = min(bytes_multiple, _multiple(index) * _pow2(stride) * elem)
    return min(bytes_multiple, ALIGNMENT)


def mark(module: ir.Module) -> int:
    """Marks the stores (see the module docstring); returns how many were marked.

    Views are folded into the stores first: ``fold-memref-alias-ops`` (in the LLVM lowering)
    rebuilds each store it folds and drops ``nontemporal`` on the way (MLIR 22). A store is
    marked only where :func:`_store_alignment` proves its address a multiple of
    :data:`ALIGNMENT` given an aligned buffer; whether the buffer is aligned is checked when the
    function runs: each thread's share of the work (the op that holds the stores) is versioned
    under ``scf.if``, streaming stores when every buffer it writes is aligned, the original
    stores otherwise. The runtime's outputs always are; anything else that calls the entry
    gets the plain loop, never a fault. A ``seq_cst`` fence follows the streaming version:
    these stores are weakly ordered, and the caller (or another thread) reads the output next.
    """
    from max.compiler.pipelines.cpu import _run

    if not any(_static_bytes(a.type) >= MIN_BYTES for fn in _entries(module)
               for a in _outputs(fn)):
        return 0  # the common case: nothing to fold, nothing to mark
    _run(module, "fold-memref-alias-ops")
    marked = 0
    for op in _entries(module):
        entry = op.regions[0].blocks[0]
        # Each thread-level op, with the stores to mark inside it and the buffers they write.
        groups: list[tuple[ir.Operation, list[ir.Operation], list[ir.Value]]] = []
        for arg in _outputs(op):
            if _static_bytes(arg.type) < MIN_BYTES:
                continue
            for write in _direct_stores(arg) or ():
                if _store_alignment(write, ir.MemRefType(arg.type)) < ALIGNMENT:
                    continue  # not provably aligned: LLVM would split it into scalar movnti
                store = _as_store(write)
                top = _thread_level(store)
                group = next((g for g in groups if g[0] == top), None)
                if group is None:
                    group = (top, [], [])
                    groups.append(group)
                group[1].append(store)
                if not any(arg == a for a in group[2]):
                    group[2].append(arg)
        aligned: dict[int, ir.Value] = {}
        for top, stores, args in groups:
            with ir.Location.unknown():
                conds = [_aligned(entry, a, aligned) for a in args]
                with ir.InsertionPoint(top):
                    cond = conds[0]
                    for c in conds[1:]:
                        cond = arith.andi(cond, c)
                    branch = scf.IfOp(cond, [], has_else=True)
                with ir.InsertionPoint(branch.else_block):
                    top.clone()  # the plain version: the stores are not marked yet
                    scf.YieldOp([])
                with ir.InsertionPoint(branch.then_block):
                    fence_at = scf.YieldOp([])
                top.move_before(fence_at)
                with ir.InsertionPoint(fence_at):
                    llvm.FenceOp(llvm.AtomicOrdering.seq_cst)
            i64 = ir.IntegerType.get_signless(64)
            for store in stores:
                store.attributes["alignment"] = ir.IntegerAttr.get(i64, ALIGNMENT)
                store.attributes["nontemporal"] = ir.BoolAttr.get(True)
            marked += len(stores)
    return marked


def _entries(module: ir.Module) -> list[ir.Operation]:
    """The graph entry functions (destination-passing: inputs, then outputs)."""
    return [f.operation for f in module.body.operations
            if f.operation.name == "func.func" and "mo.num_inputs" in f.operation.attributes]


def _outputs(fn: ir.Operation) -> list[ir.BlockArgument]:
    n_in = ir.IntegerAttr(fn.attributes["mo.num_inputs"]).value
    n_out = ir.IntegerAttr(fn.attributes["mo.num_outputs"]).value
    return list(fn.regions[0].blocks[0].arguments)[n_in:n_in + n_out]


def _aligned(entry: ir.Block, arg: ir.BlockArgument, done: dict[int, ir.Value]) -> ir.Value:
    """An i1, computed once at the top of the function: whether ``arg``'s data is aligned."""
    key = arg.arg_number
    if key not in done:
        with ir.InsertionPoint.at_block_begin(entry):
            address = memref.extract_aligned_pointer_as_index(arg)
            low = arith.andi(address, arith.constant(ir.IndexType.get(), ALIGNMENT - 1))
            done[key] = arith.cmpi(arith.CmpIPredicate.eq, low,
                                   arith.constant(ir.IndexType.get(), 0))
    return done[key]


__all__ = ["ALIGNMENT", "MIN_BYTES", "mark"]
