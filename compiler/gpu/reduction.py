"""The row-reduction schedule: a ``linalg.generic`` reducing its innermost loop, one block
per row.

Each thread folds a strided part of the row into a private accumulator (vector loads as in the
elementwise schedule), the lanes of a warp (32; an AMD wavefront: 64) combine theirs with
``gpu.shuffle xor``, each warp's lane 0 leaves its value in workgroup (shared) memory, and
after a ``gpu.barrier`` the first warp combines those and thread 0 folds the row's total into
the output (whose old value, the reduction's init, is kept). Sum, max, min, product and the
integer/bitwise reductions qualify when the body's accumulator feeds exactly one combining op
that is yielded.
"""

from __future__ import annotations

import math

from mlir import ir

from max.compiler.gpu.access import (DYNAMIC, Operand, analyze, delinearize, extents, grid,
                                     load_lanes, loop_shape, product, vector_width)
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
# Accumulator types: gpu.shuffle lowers to shfl.sync on 32-bit values; a 64-bit one is
# exchanged as its two 32-bit halves (argmax's index pass is an i64 minimum).
SHUFFLE_TYPES = ("f32", "i32", "i64", "f64")
# The neutral elements that differ for 64-bit accumulators.
NEUTRAL_64 = {
    "arith.maximumf": "0xFFF0000000000000", "arith.maxnumf": "0xFFF0000000000000",
    "arith.minimumf": "0x7FF0000000000000", "arith.minnumf": "0x7FF0000000000000",
    "arith.maxsi": "-9223372036854775808", "arith.minsi": "9223372036854775807",
}


def neutral(kind: str, t: str) -> str:
    """The neutral element of combining op ``kind`` on type ``t``, as constant text."""
    return NEUTRAL_64.get(kind, NEUTRAL[kind]) if t in ("i64", "f64") else NEUTRAL[kind]
# Lanes that run in lockstep and exchange values by shuffles: an NVIDIA warp (32), the
# default; an AMD CDNA wavefront is 64 (every function that depends on it takes ``wave``).
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


def row_threads(n: int, width: int, block: int, wave: int = WARP) -> int:
    """Threads of a block that walks rows of ``n`` elements in vectors of ``width``: whole
    waves (``wave`` lanes each), since a shuffle needs every lane of its wave (``block`` for
    a symbolic ``n``)."""
    if n == DYNAMIC:
        return block
    return min(block, max(wave, -(-(n // width) // wave) * wave))


def row_width(generic: ir.Operation, wave: int = WARP) -> int:
    """Lanes per thread step along the reduced loop (1 for short rows: more threads then)."""
    operands, _ = analyze(generic)
    shape = loop_shape(generic, operands)
    width = vector_width(operands[:-1], len(shape) - 1, shape[-1], [])
    return 1 if width > 1 and shape[-1] // width < wave else width


def shared_type(element: str, wave: int = WARP) -> str:
    """The workgroup buffer of one partial per wave (a block has at most ``wave`` waves)."""
    return f"memref<{wave}x{element}, #gpu.address_space<workgroup>>"


def kernel_text(generic: ir.Operation, block: int, wave: int = WARP) -> str:
    """The kernel module text (see ``body.emit``) for an op :func:`why_not` accepts;
    ``wave``: lanes per warp/wavefront."""
    operands, _ = analyze(generic)
    shape = loop_shape(generic, operands)
    threads = row_threads(shape[-1], row_width(generic, wave), block, wave)
    t = operands[-1].element
    k = KernelText()
    one = k.const_index(1)
    args = [f"%a{i}" for i in range(len(operands))]
    sizes = extents(k, generic, operands, args)
    rows, blocks, guard = row_grid(k, shape[:-1], sizes[:-1])
    k.raw(f"gpu.launch blocks(%bx, %by, %bz) in (%gx = {blocks}, %gy = {one}, "
          f"%gz = {one}) threads(%tx, %ty, %tz) in (%sx = {k.const_index(threads)}, "
          f"%sy = {one}, %sz = {one}) workgroup(%shared : {shared_type(t, wave)}) {{")
    if guard:
        k.raw(f"scf.if {k.op(f'arith.cmpi ult, %bx, {rows} : index', 'p')} {{")
    row_idx = delinearize(k, "%bx", sizes[:-1])
    reduce_row(k, generic, args, row_idx, "%shared", PLACEHOLDER, wave=wave,
               n=sizes[-1])
    if guard:
        k.raw("}")
    k.raw("gpu.terminator")
    k.raw("}")
    signature = ", ".join(f"{a}: {o.type}" for a, o in zip(args, operands))
    arg_types = [o.element for o in operands] + ["index"] * len(shape)
    body = k.body()
    return (f"func.func private @{PLACEHOLDER}({', '.join(arg_types)}) -> ({t})\n"
            f"func.func @kernel({signature}) {{\n    {body}\n    return\n}}\n")


def row_grid(k: KernelText, rows_shape: list[int], sizes: list[str]
             ) -> tuple[str, str, bool]:
    """Text: the rows (the product of ``sizes``, the outer extents), the grid (one block a
    row, at least one) and whether blocks must check their row exists (symbolic rows)."""
    if DYNAMIC not in rows_shape:
        return k.const_index(math.prod(rows_shape)), k.const_index(
            max(1, math.prod(rows_shape))), math.prod(rows_shape) == 0
    rows = product(k, sizes)
    return rows, grid(k, rows, 1), True


def reduce_row(k: KernelText, generic: ir.Operation, args: list[str], row_idx: list[str],
               shared: str, placeholder: str, operands: list[Operand] | None = None,
               wave: int = WARP, n: str | None = None) -> None:
    """Text: the block's threads fold the row ``row_idx`` of ``generic`` (operands named
    ``args``, read as ``operands``: by default as ``analyze`` finds them) and thread 0 folds
    the total into the output; ``shared``: a workgroup buffer of ``wave`` elements of the
    output's type. Threads: ``%tx`` of ``%sx`` (a multiple of ``wave``, the lanes of a warp or
    wavefront). ``n``: the row length's index value, where it is symbolic."""
    found, _ = analyze(generic)
    shape = loop_shape(generic, found)
    operands = operands or found
    inputs, out = operands[:-1], operands[-1]
    width = row_width(generic, wave)
    if shape[-1] == DYNAMIC:
        assert n is not None, "a symbolic row length needs its value"
        steps = n
    else:
        steps = k.const_index(shape[-1] // width)
    comb = combiner(generic)
    assert comb is not None
    kind, t = comb.name, out.element
    neutral_text = f"arith.constant {neutral(kind, t)} : {t}"
    init = k.op(neutral_text, "n")
    acc = k.fresh("acc")
    it = k.fresh("it")
    j = k.fresh("j")
    k.raw(f"{acc} = scf.for {j} = %tx to {steps} step %sx "
          f"iter_args({it} = {init}) -> ({t}) {{")
    inner = k.op(f"arith.muli {j}, {k.const_index(width)} : index") if width > 1 else j
    indices = row_idx + [inner]
    lanes = [load_lanes(k, a, o, indices, len(shape) - 1, width)
             for a, o in zip(args, inputs)]
    arg_types = [o.element for o in operands] + ["index"] * len(shape)
    current = it
    for lane in range(width):
        lane_idx = list(indices)
        if lane:
            lane_idx[-1] = k.op(f"arith.addi {inner}, {k.const_index(lane)} : index")
        call_args = [values[lane] for values in lanes] + [current] + lane_idx
        current = k.op(f"func.call @{placeholder}({', '.join(call_args)}) : "
                       f"({', '.join(arg_types)}) -> ({t})", "r")
    k.raw(f"scf.yield {current} : {t}")
    k.raw("}")
    warp_total = _warp_reduce(k, acc, kind, t, wave)
    c32 = k.const_index(wave)
    lane_id = k.op(f"arith.remui %tx, {c32} : index", "l")
    warp_id = k.op(f"arith.divui %tx, {c32} : index", "w")
    zero = k.const_index(0)
    is_first_lane = k.op(f"arith.cmpi eq, {lane_id}, {zero} : index", "p")
    k.raw(f"scf.if {is_first_lane} {{")
    k.raw(f"memref.store {warp_total}, {shared}[{warp_id}] : {shared_type(t, wave)}")
    k.raw("}")
    k.raw("gpu.barrier")
    is_first_warp = k.op(f"arith.cmpi eq, {warp_id}, {zero} : index", "p")
    k.raw(f"scf.if {is_first_warp} {{")
    nwarps = k.op(f"arith.divui %sx, {c32} : index", "w")
    has_value = k.op(f"arith.cmpi ult, {lane_id}, {nwarps} : index", "p")
    partial = k.op(f"memref.load {shared}[{lane_id}] : {shared_type(t, wave)}", "s")
    value = k.op(f"arith.select {has_value}, {partial}, {k.op(neutral_text, 'n')} : {t}", "s")
    total = _warp_reduce(k, value, kind, t, wave)
    k.raw(f"scf.if {is_first_lane} {{")
    assert out.dims is not None
    out_idx = [zero if d is None else row_idx[d] for d in out.dims]
    where = f"{args[len(args) - 1]}[{', '.join(out_idx)}]"
    old = k.op(f"memref.load {where} : {out.type}", "o")
    new = k.op(f"{kind} {total}, {old} : {t}", "o")
    k.raw(f"memref.store {new}, {where} : {out.type}")
    k.raw("}")
    k.raw("}")


def _warp_reduce(k: KernelText, value: str, kind: str, t: str, wave: int = WARP) -> str:
    """Text combining ``value`` over the ``wave`` lanes of a warp/wavefront (butterfly: every
    lane gets it; offsets ``wave/2 .. 1``)."""
    width = k.op(f"arith.constant {wave} : i32")
    offsets = []
    offset = wave // 2
    while offset:
        offsets.append(offset)
        offset //= 2
    for offset in offsets:
        off = k.op(f"arith.constant {offset} : i32")
        other = _shuffle_xor(k, value, off, width, t)
        value = k.op(f"{kind} {value}, {other} : {t}", "s")
    return value


def _shuffle_xor(k: KernelText, value: str, offset: str, width: str, t: str) -> str:
    """Text: ``value`` of the lane ``offset`` away (xor); 64-bit types as two 32-bit halves."""
    if t not in ("i64", "f64"):
        other = k.fresh("sh")
        k.raw(f"{other}, {k.fresh('ok')} = gpu.shuffle xor {value}, {offset}, {width} : {t}")
        return other
    bits = k.op(f"arith.bitcast {value} : f64 to i64") if t == "f64" else value
    c32 = k.op("arith.constant 32 : i64")
    halves = [k.op(f"arith.trunci {bits} : i64 to i32"),
              k.op(f"arith.trunci {k.op(f'arith.shrui {bits}, {c32} : i64')} : i64 to i32")]
    lo, hi = (_shuffle_xor(k, h, offset, width, "i32") for h in halves)
    lo64 = k.op(f"arith.extui {lo} : i32 to i64")
    hi64 = k.op(f"arith.shli {k.op(f'arith.extui {hi} : i32 to i64')}, {c32} : i64")
    joined = k.op(f"arith.ori {lo64}, {hi64} : i64")
    return k.op(f"arith.bitcast {joined} : i64 to f64") if t == "f64" else joined


__all__ = ["NEUTRAL", "NEUTRAL_64", "WARP", "combiner", "kernel_text", "neutral", "reduce_row",
           "row_grid", "row_threads", "row_width", "shared_type", "why_not"]
