"""The row-reduction schedule: a ``linalg.generic`` reducing its innermost loop, one block
per row.

Each thread folds a strided part of the row into a private accumulator (vector loads as in the
elementwise schedule), the 32 lanes of a warp combine theirs with ``gpu.shuffle xor``, each
warp's lane 0 leaves its value in workgroup (shared) memory, and after a ``gpu.barrier`` the
first warp combines those and thread 0 folds the row's total into the output (whose old value,
the reduction's init, is kept). Sum, max, min, product and the integer/bitwise reductions
qualify when the body's accumulator feeds exactly one combining op that is yielded.
"""

from __future__ import annotations

from mlir import ir

from max.compiler.gpu.access import analyze, delinearize, load_lanes, loop_shape, vector_width
from max.compiler.gpu.body import PLACEHOLDER, KernelText, body_block, check_body

# Combining op -> its neutral element as text (by element type kind: float or integer).
NEUTRAL = {
    "arith.addf": "0.0", "arith.mulf": "1.0",
    "arith.maximumf": "0xFF800000", "arith.maxnumf": "0xFF800000",
    "arith.minimumf": "0x7F800000", "arith.minnumf": "0x7F800000",
    "arith.addi": "0", "arith.muli": "1", "arith.ori": "0", "arith.xori": "0",
    "arith.andi": "-1", "arith.maxsi": "-2147483648", "arith.minsi": "2147483647",
    "arith.maxui": "0", "arith.minui": "-1",
}
SHUFFLE_TYPES = ("f32", "i32")  # gpu.shuffle lowers to shfl.sync on 32-bit values
WARP = 32


def combiner(generic: ir.Operation) -> ir.Operation | None:
    """The op that folds a value into the accumulator (None: the body is not a fold)."""
    block = body_block(generic)
    acc = block.arguments[len(block.arguments) - 1]
    uses = list(acc.uses)
    if len(uses) != 1:
        return None
    op = uses[0].owner
    yield_op = block.operations[len(block.operations) - 1]
    if op.name not in NEUTRAL or len(op.results) != 1 or \
            list(yield_op.operands) != [op.results[0]]:
        return None
    return op


def why_not(generic: ir.Operation) -> str | None:
    """Why this schedule cannot take ``generic`` (None: it can)."""
    iterators = [str(a) for a in ir.ArrayAttr(generic.attributes["iterator_types"])]
    rank = len(iterators)
    if rank == 0 or "reduction" not in iterators[-1] or \
            any("reduction" in i for i in iterators[:-1]):
        return "not a reduction of the innermost loop only"
    if len(generic.results) or len(list(generic.operands)) - _num_inputs(generic) != 1:
        return "not one output"
    operands, reason = analyze(generic)
    if reason:
        return reason
    out = operands[-1]
    if out.dims != tuple(range(rank - 1)) or out.element not in SHUFFLE_TYPES:
        return f"output {out.type} is not indexed by the outer loops, or not f32/i32"
    for o in operands[:-1]:
        if o.lanes_kind(rank - 1) == "strided":
            return f"an input {o.type} is not contiguous along the reduced loop"
    try:
        loop_shape(generic, operands)
    except ValueError as e:
        return str(e)
    if combiner(generic) is None:
        return "the body is not one combining op on the accumulator"
    return check_body(generic)


def _num_inputs(generic: ir.Operation) -> int:
    return ir.DenseI32ArrayAttr(generic.attributes["operandSegmentSizes"])[0]


def kernel_text(generic: ir.Operation, block: int) -> str:
    """The kernel module text (see ``body.emit``) for an op :func:`why_not` accepts."""
    operands, _ = analyze(generic)
    inputs, out = operands[:-1], operands[-1]
    shape = loop_shape(generic, operands)
    rows_shape, n = shape[:-1], shape[-1]
    width = vector_width(inputs, len(shape) - 1, n, [])
    if width > 1 and n // width < WARP:  # short rows: more threads beat wider loads
        width = 1
    threads = min(block, max(WARP, -(-(n // width) // WARP) * WARP))
    rows = 1
    for s in rows_shape:
        rows *= s
    comb = combiner(generic)
    assert comb is not None
    kind, t = comb.name, out.element
    neutral = f"arith.constant {NEUTRAL[kind]} : {t}"

    k = KernelText()
    one, nthreads = k.const_index(1), k.const_index(threads)
    k.raw(f"gpu.launch blocks(%bx, %by, %bz) in (%gx = {k.const_index(rows)}, %gy = {one}, "
          f"%gz = {one}) threads(%tx, %ty, %tz) in (%sx = {nthreads}, %sy = {one}, "
          f"%sz = {one}) workgroup(%shared : memref<{WARP}x{t}, #gpu.address_space<workgroup>>)"
          " {")
    row_idx = delinearize(k, "%bx", rows_shape)
    init = k.op(neutral, "n")
    steps = k.const_index(n // width)
    acc = k.fresh("acc")
    k.raw(f"{acc} = scf.for %j = %tx to {steps} step %sx iter_args(%a = {init}) -> ({t}) {{")
    inner = k.op(f"arith.muli %j, {k.const_index(width)} : index") if width > 1 else "%j"
    indices = row_idx + [inner]
    args = [f"%a{i}" for i in range(len(operands))]
    lanes = [load_lanes(k, a, o, indices, len(shape) - 1, width)
             for a, o in zip(args, inputs)]
    arg_types = [o.element for o in operands] + ["index"] * len(shape)
    current = "%a"
    for lane in range(width):
        lane_idx = list(indices)
        if lane:
            lane_idx[-1] = k.op(f"arith.addi {inner}, {k.const_index(lane)} : index")
        call_args = [values[lane] for values in lanes] + [current] + lane_idx
        current = k.op(f"func.call @{PLACEHOLDER}({', '.join(call_args)}) : "
                       f"({', '.join(arg_types)}) -> ({t})", "r")
    k.raw(f"scf.yield {current} : {t}")
    k.raw("}")
    warp_total = _warp_reduce(k, acc, kind, t)
    c32 = k.const_index(WARP)
    lane_id = k.op(f"arith.remui %tx, {c32} : index", "l")
    warp_id = k.op(f"arith.divui %tx, {c32} : index", "w")
    zero = k.const_index(0)
    is_first_lane = k.op(f"arith.cmpi eq, {lane_id}, {zero} : index", "p")
    k.raw(f"scf.if {is_first_lane} {{")
    k.raw(f"memref.store {warp_total}, %shared[{warp_id}] : "
          f"memref<{WARP}x{t}, #gpu.address_space<workgroup>>")
    k.raw("}")
    k.raw("gpu.barrier")
    is_first_warp = k.op(f"arith.cmpi eq, {warp_id}, {zero} : index", "p")
    k.raw(f"scf.if {is_first_warp} {{")
    nwarps = k.const_index(threads // WARP)
    has_value = k.op(f"arith.cmpi ult, {lane_id}, {nwarps} : index", "p")
    partial = k.op(f"memref.load %shared[{lane_id}] : "
                   f"memref<{WARP}x{t}, #gpu.address_space<workgroup>>", "s")
    neutral2 = k.op(neutral, "n")
    value = k.op(f"arith.select {has_value}, {partial}, {neutral2} : {t}", "s")
    total = _warp_reduce(k, value, kind, t)
    k.raw(f"scf.if {is_first_lane} {{")
    where = f"%a{len(operands) - 1}[{', '.join(row_idx)}]"
    old = k.op(f"memref.load {where} : {out.type}", "o")
    new = k.op(f"{kind} {total}, {old} : {t}", "o")
    k.raw(f"memref.store {new}, {where} : {out.type}")
    k.raw("}")
    k.raw("}")
    k.raw("gpu.terminator")
    k.raw("}")
    signature = ", ".join(f"{a}: {o.type}" for a, o in zip(args, operands))
    body = "\n    ".join(k.lines)
    return (f"func.func private @{PLACEHOLDER}({', '.join(arg_types)}) -> ({t})\n"
            f"func.func @kernel({signature}) {{\n    {body}\n    return\n}}\n")


def _warp_reduce(k: KernelText, value: str, kind: str, t: str) -> str:
    """Text combining ``value`` over the 32 lanes of a warp (butterfly: every lane gets it)."""
    width = k.op(f"arith.constant {WARP} : i32")
    for offset in (16, 8, 4, 2, 1):
        off = k.op(f"arith.constant {offset} : i32")
        other = k.fresh("sh")
        k.raw(f"{other}, {k.fresh('ok')} = gpu.shuffle xor {value}, {off}, {width} : {t}")
        value = k.op(f"{kind} {value}, {other} : {t}", "s")
    return value


__all__ = ["NEUTRAL", "combiner", "kernel_text", "why_not"]
