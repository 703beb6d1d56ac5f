"""Row groups: consecutive ops over the same rows (softmax, layer norm) as one kernel, one
block per row.

A group is a run of ``linalg.generic`` ops with one reduction of the innermost loop at least,
all over the same outer loops (the rows ``R``): row reductions ``[R, N] -> [R]``, row maps
(all parallel over ``[R, N]``) and row scalars (all parallel over ``[R]``: fills, ``1/sum``).
Each operand is *row-local*: indexed by the outer loops first, in order, or by none of them
(``gamma[N]``, shared by the rows). A block runs the ops on its row one after the other with a
``gpu.barrier`` between them, so that a value one op writes is what the next reads: one
launch instead of one per op. A buffer that only the group uses (softmax's ``exp(x - max)``,
the row max and sum) is one row in workgroup memory while they fit :data:`PROMOTE_BYTES`;
others stay in global memory (the block's own row, hot in L1).
"""

from __future__ import annotations

from mlir import ir

from max.compiler.gpu import elementwise, reduction
from max.compiler.gpu.access import (DYNAMIC, Operand, analyze, delinearize, extents,
                                     load_lanes, loop_keys, loop_shape, store_lanes,
                                     vector_width)
from max.compiler.gpu.body import KernelText, body_block, emit_group
from max.compiler.gpu.reduction import (WARP, reduce_row, row_grid, row_threads, row_width,
                                        shared_type)

# Ops that may sit between two ops of a group: they move before it, in order (their
# operands come from before the group or from each other: the group's generics define no
# values). memref.dim: the size of a symbolic allocation.
TRANSPARENT = ("memref.alloc", "memref.expand_shape", "memref.collapse_shape",
               "memref.subview", "memref.cast", "memref.reshape", "memref.dim")
BODY = "__mo_gpu_row_body_"


def _kind(op: ir.Operation, rows: list[object]) -> str | None:
    """``"reduce"``, ``"map"``, ``"scalar"`` or None (not an op of a group over ``rows``,
    the outer extents as :func:`loop_keys` gives them: symbolic ones known to be the same)."""
    if op.name != "linalg.generic":
        return None
    operands, reason = analyze(op)
    if reason:
        return None
    if reduction.why_not(op) is None:
        kind = "reduce"
        keys = loop_keys(op, operands)
        if keys[:-1] != rows or loop_shape(op, operands)[-1] == DYNAMIC:
            return None
    elif elementwise.why_not(op) is None:
        keys = loop_keys(op, operands)
        if keys == rows:
            kind = "scalar"
        elif keys[:-1] == rows and loop_shape(op, operands)[-1] != DYNAMIC:
            kind = "map"
        else:
            return None
    else:
        return None
    p = len(rows)
    for o in operands:
        if o.dims is None:
            continue
        used = [d for d in o.dims if d is not None and d < p]
        rest = o.dims[p:] if used else o.dims
        if used and tuple(o.dims[:p]) != tuple(range(p)):
            return None
        if any(d is not None and d != p for d in rest):
            return None
    return kind


def find_groups(block: ir.Block) -> list[list[ir.Operation]]:
    """The row groups of a host function's block, each a list of generics in order."""
    items = [op.operation for op in block.operations]
    taken: set[int] = set()  # positions in items
    groups: list[list[ir.Operation]] = []
    for at, seed in enumerate(items):
        if seed.name != "linalg.generic" or at in taken or reduction.why_not(seed) is not None:
            continue
        operands, _ = analyze(seed)
        rows = loop_keys(seed, operands)[:-1]
        if not rows or _kind(seed, rows) is None:
            continue
        start = stop = at
        while start > 0 and start - 1 not in taken and _joins(items[start - 1], rows):
            start -= 1
        while stop + 1 < len(items) and stop + 1 not in taken and \
                _joins(items[stop + 1], rows):
            stop += 1
        while items[start].name != "linalg.generic":  # transparent ops stay outside
            start += 1
        while items[stop].name != "linalg.generic":
            stop -= 1
        group = [op for op in items[start:stop + 1] if op.name == "linalg.generic"]
        if len(group) >= 2 and _reads_only_rows(group):
            groups.append(group)
            taken.update(range(start, stop + 1))
    return groups


def _joins(op: ir.Operation, rows: list[object]) -> bool:
    if op.name in TRANSPARENT:
        return True
    return _kind(op, rows) is not None


def _reads_only_rows(group: list[ir.Operation]) -> bool:
    """No op reads, shared by every row, a buffer the group writes."""
    written = [v for op in group for v in _outputs(op)]
    for op in group:
        operands, _ = analyze(op)
        for value, o in zip(op.operands, operands):
            if o.dims is not None and not any(d == 0 for d in o.dims) and value in written:
                return False
    return True


def _outputs(op: ir.Operation) -> list[ir.Value]:
    n_in = ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"])[0]
    return list(op.operands)[n_in:]


def emit(group: list[ir.Operation], block: int, wave: int = WARP) -> None:
    """Replaces ``group`` by one kernel (transparent ops between its ops move before it);
    ``wave``: lanes per warp/wavefront."""
    first, last = group[0], group[-1]
    ops = [o.operation for o in first.operation.block.operations]
    i, j = ops.index(first), ops.index(last)
    moving = [o for o in ops[i + 1:j] if o.name in TRANSPARENT]
    for o in moving:
        o.move_before(first)
    values: list[ir.Value] = []
    for op in group:
        for v in op.operands:
            if v not in values:
                values.append(v)
    emit_group({f"{BODY}{i}": op for i, op in enumerate(group)},
               kernel_text(group, values, block, wave), values, first)


def kernel_text(group: list[ir.Operation], values: list[ir.Value], block: int,
                wave: int = WARP) -> str:
    """The kernel module text of a group whose operands are ``values`` (``%a<i>``)."""
    seed = next(op for op in group if reduction.why_not(op) is None)
    seed_operands, _ = analyze(seed)
    shape = loop_shape(seed, seed_operands)
    rows_shape, n = shape[:-1], shape[-1]
    row_keys = loop_keys(seed, seed_operands)[:-1]
    threads = row_threads(n, row_width(seed, wave), block, wave)
    elements = sorted({analyze(op)[0][-1].element for op in group
                       if reduction.why_not(op) is None})
    shared = {t: f"%shared_{t}" for t in elements}
    promoted = _promotable(group, values, len(rows_shape))
    k = KernelText()
    one = k.const_index(1)
    workgroup = ", ".join([f"{name} : {shared_type(t, wave)}"
                           for t, name in shared.items()] +
                          [f"%row{i} : {o.type}" for i, o in promoted.items()])
    seed_args = [f"%a{values.index(v)}" for v in seed.operands]
    sizes = extents(k, seed, seed_operands, seed_args)[:-1]
    rows, blocks, guard = row_grid(k, rows_shape, sizes)
    k.raw(f"gpu.launch blocks(%bx, %by, %bz) in (%gx = {blocks}, %gy = {one}, "
          f"%gz = {one}) threads(%tx, %ty, %tz) in (%sx = {k.const_index(threads)}, "
          f"%sy = {one}, %sz = {one}) workgroup({workgroup}) {{")
    if guard:  # the whole block skips a row past the end: its barriers stay uniform
        k.raw(f"scf.if {k.op(f'arith.cmpi ult, %bx, {rows} : index', 'p')} {{")
    row_idx = delinearize(k, "%bx", sizes)
    names = {i: f"%row{i}" if i in promoted else f"%a{i}" for i in range(len(values))}
    declarations = []
    for index, op in enumerate(group):
        found, _ = analyze(op)
        extent = loop_shape(op, found)[-1]  # read from the op's own operands, not promoted
        at = [values.index(v) for v in op.operands]
        args = [names[i] for i in at]
        operands = [promoted.get(i, o) for i, o in zip(at, found)]
        name = f"{BODY}{index}"
        kind = _kind(op, row_keys)
        if index:
            k.raw("gpu.barrier")
        if kind == "reduce":
            reduce_row(k, op, args, row_idx, shared[operands[-1].element], name, operands,
                       wave)
            results = [operands[-1].element]
        elif kind == "map":
            _map_row(k, op, operands, args, row_idx, extent, name)
            results = [o.element for o in operands[len(operands) - len(_outputs(op)):]]
        else:
            _scalar_row(k, op, operands, args, row_idx, name)
            results = [o.element for o in operands[len(operands) - len(_outputs(op)):]]
        rank = len(ir.ArrayAttr(op.attributes["iterator_types"]))
        arg_types = [o.element for o in operands] + ["index"] * rank
        declarations.append(f"func.func private @{name}({', '.join(arg_types)}) -> "
                            f"({', '.join(results)})")
    if guard:
        k.raw("}")
    k.raw("gpu.terminator")
    k.raw("}")
    signature = ", ".join(f"%a{i}: {v.type}" for i, v in enumerate(values))
    body = k.body()
    return ("\n".join(declarations) +
            f"\nfunc.func @kernel({signature}) {{\n    {body}\n    return\n}}\n")


# Workgroup memory for row intermediates (of 227 KB per SM on sm_90, 163 KB on sm_80): kept
# well below, so that several blocks stay resident per SM.
PROMOTE_BYTES = 32 * 1024


def _promotable(group: list[ir.Operation], values: list[ir.Value], p: int
                ) -> dict[int, Operand]:
    """The buffers only this group uses (allocated in the function, every use a row-local
    one in the group) that fit in :data:`PROMOTE_BYTES`: by index in ``values``, the
    operand as the kernel reads it instead, one row in workgroup memory."""
    result: dict[int, Operand] = {}
    budget = PROMOTE_BYTES
    for i, value in enumerate(values):
        owner = value.owner
        if not isinstance(owner, ir.Operation) and hasattr(owner, "operation"):
            owner = owner.operation
        if not isinstance(owner, ir.Operation) or owner.name != "memref.alloc":
            continue
        if any(use.owner.operation not in group for use in value.uses):
            continue
        kinds = set()
        for op in group:
            operands, _ = analyze(op)
            for v, o in zip(op.operands, operands):
                if v == value:
                    kinds.add(o.dims)
        full = {tuple(range(p)), tuple(range(p + 1))}
        if not kinds or not kinds <= full or len(kinds) != 1:
            continue
        mt = ir.MemRefType(value.type)
        row = list(mt.shape)[p:] or [1]
        o = analyze_one(group, value)
        nbytes = row[0] * o.element_bytes
        if nbytes > budget:
            continue
        budget -= nbytes
        dims = (p,) if len(mt.shape) == p + 1 else (None,)
        result[i] = Operand(f"memref<{row[0]}x{o.element}, #gpu.address_space<workgroup>>",
                            o.element, o.element_bytes, dims, True)
    return result


def analyze_one(group: list[ir.Operation], value: ir.Value) -> Operand:
    """How the first op of ``group`` that uses ``value`` reads it."""
    for op in group:
        operands, _ = analyze(op)
        for v, o in zip(op.operands, operands):
            if v == value:
                return o
    raise ValueError("value not used by the group")


def _map_row(k: KernelText, op: ir.Operation, operands: list[Operand], args: list[str],
             row_idx: list[str], n: int, name: str) -> None:
    """Text: the block's threads run an all-parallel op over its row, vectors of 16 bytes."""
    n_out = len(_outputs(op))
    inputs, outputs = operands[:-n_out], operands[-n_out:]
    p = len(row_idx)
    width = vector_width(operands, p, n, outputs)
    j = k.fresh("j")
    k.raw(f"scf.for {j} = %tx to {k.const_index(n // width)} step %sx {{")
    inner = k.op(f"arith.muli {j}, {k.const_index(width)} : index") if width > 1 else j
    indices = row_idx + [inner]
    _apply(k, op, operands, inputs, outputs, args, indices, p, width, name)
    k.raw("}")


def _scalar_row(k: KernelText, op: ir.Operation, operands: list[Operand], args: list[str],
                row_idx: list[str], name: str) -> None:
    """Text: thread 0 runs an op over ``[R]`` at its row."""
    n_out = len(_outputs(op))
    first = k.op(f"arith.cmpi eq, %tx, {k.const_index(0)} : index", "p")
    k.raw(f"scf.if {first} {{")
    _apply(k, op, operands, operands[:-n_out], operands[-n_out:], args, list(row_idx),
           len(row_idx), 1, name)
    k.raw("}")


def _apply(k: KernelText, op: ir.Operation, operands: list[Operand], inputs: list[Operand],
           outputs: list[Operand], args: list[str], indices: list[str], inner: int,
           width: int, name: str) -> None:
    """Text: load the lanes at ``indices``, run the body once per lane, store the results."""
    n_in = len(inputs)
    lanes = [load_lanes(k, a, o, indices, inner, width) for a, o in zip(args, inputs)]
    out_args = list(body_block(op).arguments)[n_in:]
    for a, o, barg in zip(args[n_in:], outputs, out_args):
        if len(list(barg.uses)):
            lanes.append(load_lanes(k, a, o, indices, inner, width))
        else:
            lanes.append([k.op(elementwise.zero_text(o.element), "z")] * width)
    arg_types = [o.element for o in operands] + ["index"] * len(indices)
    res_types = [o.element for o in outputs]
    results: list[list[str]] = [[] for _ in outputs]
    for lane in range(width):
        lane_idx = list(indices)
        if lane:
            lane_idx[-1] = k.op(f"arith.addi {indices[-1]}, {k.const_index(lane)} : index")
        call_args = [values[lane] for values in lanes] + lane_idx
        outs = [k.fresh("r") for _ in outputs]
        k.raw(f"{', '.join(outs)} = func.call @{name}({', '.join(call_args)}) : "
              f"({', '.join(arg_types)}) -> ({', '.join(res_types)})")
        for r, out in zip(results, outs):
            r.append(out)
    for a, o, values in zip(args[n_in:], outputs, results):
        store_lanes(k, values, a, o, indices)


__all__ = ["emit", "find_groups", "kernel_text"]
