"""cumsum (along the last axis a vector of lanes at a time, else a loop over the axis),
band_part (a mask by loop indices), pad, range, rebind, shape_to_tensor and tile (copies
inserted into the result).

What cannot be proved at compile time is checked at run time through the checks buffer: a
range's declared length, a rebind's dims. The compiled code never reads or writes past a
tensor whatever the check finds: a range writes only its declared length, a mismatched rebind
copies what exists into a zero-filled tensor of the declared shape.
"""

from __future__ import annotations

from collections.abc import Callable

from mlir import ir
from mlir.dialects import arith, math, scf, tensor, vector

from max.compiler.lowering.builders import (
    PARALLEL,
    fill,
    generic,
    identity_map,
    linalg_index,
    scalar,
)
from max.compiler.lowering.context import DYNAMIC, LoweringContext, element_type, kind_of
from max.compiler.lowering.elementwise import BINARY, F, I, convert_scalar
from max.compiler.lowering.precision import in_f32
from max.compiler.lowering.registry import lowering
from max.compiler.lowering.shape_ops import Mixed, extract_slice, insert_slice
from max.dialects.mo.dim import StaticDim, _parse_dim
from max.dialects.mo.opdefs.sequence import shape_dims
from max.dialects.mo.types import MOTensorType


def _i64() -> ir.Type:
    return ir.IntegerType.get_signless(64)


def _zero(t: ir.Type) -> ir.Value:
    """0 of a storage element type (float8 included: its all-zero bits are +0)."""
    return scalar(t, 0.0 if isinstance(t, ir.FloatType) else 0)


def _static_or_value(sizes: list[Mixed], ctx: LoweringContext) -> list[ir.Value]:
    """Mixed sizes as index values (constants for the static ones)."""
    return [ctx.index(s) if isinstance(s, int) else s for s in sizes]


def _product(ctx: LoweringContext, sizes: list[Mixed]) -> Mixed:
    """The product of mixed static/dynamic sizes (static where all are)."""
    out: Mixed = 1
    for s in sizes:
        if isinstance(out, int) and isinstance(s, int):
            out *= s
        else:
            a, b = _static_or_value([out, s], ctx)
            out = arith.muli(a, b)
    return out


def _reshaped(ctx: LoweringContext, x: ir.Value, sizes: list[Mixed], et: ir.Type) -> ir.Value:
    """tensor.reshape of a contiguous tensor to ``sizes`` (bufferizes to a view, no copy)."""
    shape_t = ir.RankedTensorType.get([len(sizes)], ir.IndexType.get())
    shape = tensor.from_elements(shape_t, _static_or_value(sizes, ctx))
    result_t = ir.RankedTensorType.get([s if isinstance(s, int) else DYNAMIC for s in sizes], et)
    return tensor.reshape(result_t, x, shape)


def _scan(ctx: LoweringContext, x: ir.Value, out: ir.Value, acc: ir.Value, prefix: list[Mixed],
          n: ir.Value, rest: list[Mixed], *, exclusive: bool, reverse: bool,
          add: Callable[[ir.Value, ir.Value], ir.Value]) -> ir.Value:
    """One pass over dim ``len(prefix)`` of ``x`` (shape ``[*prefix dims, n, *rest]``) at the
    index ``prefix``: the running sum ``acc`` (shape ``rest``) is carried through an scf.for
    and updated in place by one vectorizable generic per step. Returns the new ``out``."""
    step = ctx.index(1)
    rank = len(rest)
    acc_t = ir.RankedTensorType(acc.type)
    loop = scf.ForOp(ctx.index(0), n, step, [acc, out])
    with ir.InsertionPoint(loop.body):
        i = loop.induction_variable
        acc, out = loop.inner_iter_args
        pos = arith.subi(arith.subi(n, step), i) if reverse else i
        offsets: list[Mixed] = [*prefix, pos, *([0] * rank)]
        sizes: list[Mixed] = [*([1] * len(prefix)), 1, *rest]
        row = extract_slice(acc_t, x, offsets, sizes, [1] * len(sizes))
        if exclusive:
            out = insert_slice(acc, out, offsets, sizes)
        acc = generic([row], [acc], [identity_map(rank)] * 2, [PARALLEL] * rank,
                      lambda v, a: add(a, v))[0]
        if not exclusive:
            out = insert_slice(acc, out, offsets, sizes)
        scf.YieldOp([acc, out])
    return loop.results[1]


# Lanes of a vector scan step: a 512-bit register of 32-bit elements (two ymm with AVX2),
# 8 of 64-bit ones.
_SCAN_BITS = 512


def _scan_vectors(ctx: LoweringContext, et: ir.Type, n: ir.Value
                  ) -> tuple[int, ir.VectorType, ir.Value, ir.Value, ir.Value, ir.ArrayAttr]:
    """What the vector scans share: (lanes, the vector type, 0 and a vector of 0s, the
    count of chunks of lanes covering ``n`` elements, the masked transfers' in_bounds)."""
    lanes = max(2, _SCAN_BITS // et.width)
    vt = ir.VectorType.get([lanes], et)
    zero_s = _zero(et)
    chunks = arith.divui(arith.addi(n, ctx.index(lanes - 1)), ctx.index(lanes))
    return (lanes, vt, zero_s, vector.BroadcastOp(vt, zero_s).result, chunks,
            ir.ArrayAttr.get([ir.BoolAttr.get(False)]))


def _lane_scan(v: ir.Value, lanes: int, reverse: bool,
               add: Callable[[ir.Value, ir.Value], ir.Value], zero: ir.Value) -> ir.Value:
    """The running sums of the lanes of ``v`` (suffix sums with ``reverse``): log2(lanes)
    steps, each adding the vector shifted by 1, 2, 4, ... lanes with zeros shifted in."""
    shift = 1
    while shift < lanes:
        if reverse:  # lane i gets v[i + shift]
            picks = [i + shift if i + shift < lanes else lanes for i in range(lanes)]
        else:  # lane i gets v[i - shift]
            picks = [i - shift if i >= shift else lanes for i in range(lanes)]
        v = add(v, vector.ShuffleOp(v, zero, ir.DenseI64ArrayAttr.get(picks)).result)
        shift *= 2
    return v


def _vector_scan_rows(ctx: LoweringContext, x2: ir.Value, out2: ir.Value, rows: ir.Value,
                      n: ir.Value, et: ir.Type, *, exclusive: bool, reverse: bool,
                      add: Callable[[ir.Value, ir.Value], ir.Value]) -> ir.Value:
    """The scan of each row of ``x2`` ([rows, n], contiguous rows) into ``out2``, a vector of
    lanes at a time: each chunk's lane sums (:func:`_lane_scan`) plus the sum of the chunks
    before it, carried as a broadcast vector. Every chunk is a masked read and write: the
    last one of a row stops at n."""
    lanes, vt, zero_s, zero, chunks, in_bounds = _scan_vectors(ctx, et, n)
    c0, c1, cl = ctx.index(0), ctx.index(1), ctx.index(lanes)
    perm = ir.AffineMapAttr.get(ir.AffineMap.get_minor_identity(2, 1))
    row_loop = scf.ForOp(c0, rows, c1, [out2])
    with ir.InsertionPoint(row_loop.body):
        r = row_loop.induction_variable
        chunk_loop = scf.ForOp(c0, chunks, c1, [zero, row_loop.inner_iter_args[0]])
        with ir.InsertionPoint(chunk_loop.body):
            k = chunk_loop.induction_variable
            carry, out = chunk_loop.inner_iter_args
            if reverse:
                k = arith.subi(arith.subi(chunks, c1), k)
            j = arith.muli(k, cl)
            v = vector.TransferReadOp(vt, x2, [r, j], perm, zero_s, in_bounds).result
            sums = add(_lane_scan(v, lanes, reverse, add, zero), carry)
            if exclusive:  # each lane takes its neighbour's sum; the end lane the carry
                picks = ([i + 1 for i in range(lanes - 1)] + [lanes] if reverse
                         else [lanes] + list(range(lanes - 1)))
                result = vector.ShuffleOp(sums, carry, ir.DenseI64ArrayAttr.get(picks)).result
            else:
                result = sums
            out = vector.TransferWriteOp(out.type, result, out, [r, j], perm, in_bounds).result
            end = vector.ExtractOp(sums, [], [0 if reverse else lanes - 1]).result
            scf.YieldOp([vector.BroadcastOp(vt, end).result, out])
        scf.YieldOp([chunk_loop.results[1]])
    return row_loop.results[0]


def _vector_scan_columns(ctx: LoweringContext, x3: ir.Value, out3: ir.Value, outer: ir.Value,
                         n: ir.Value, inner: ir.Value, et: ir.Type, *, exclusive: bool,
                         reverse: bool, add: Callable[[ir.Value, ir.Value], ir.Value]
                         ) -> ir.Value:
    """The scan of ``x3`` ([outer, n, inner], contiguous) along its middle dim into ``out3``:
    each row of ``inner`` elements is the previous output row (just written, in cache) plus an
    input row, a vector of lanes at a time, the first row the input's own (zeros where
    ``exclusive``). Rows walk memory in order; the last chunk of a row is masked."""
    lanes, vt, zero_s, zero, chunks, in_bounds = _scan_vectors(ctx, et, inner)
    c0, c1, cl = ctx.index(0), ctx.index(1), ctx.index(lanes)
    perm = ir.AffineMapAttr.get(ir.AffineMap.get_minor_identity(3, 1))
    last = arith.subi(n, c1)

    def row(i: ir.Value) -> ir.Value:
        return arith.subi(last, i) if reverse else i

    def each_chunk(out: ir.Value, value: Callable[[ir.Value, ir.Value], ir.Value],
                   o: ir.Value, i: ir.Value) -> ir.Value:
        loop = scf.ForOp(c0, chunks, c1, [out])
        with ir.InsertionPoint(loop.body):
            j = arith.muli(loop.induction_variable, cl)
            current = loop.inner_iter_args[0]
            v = value(current, j)
            scf.YieldOp([vector.TransferWriteOp(current.type, v, current, [o, i, j], perm,
                                                in_bounds).result])
        return loop.results[0]

    def read(t: ir.Value, o: ir.Value, i: ir.Value, j: ir.Value) -> ir.Value:
        return vector.TransferReadOp(vt, t, [o, i, j], perm, zero_s, in_bounds).result

    outer_loop = scf.ForOp(c0, outer, c1, [out3])
    with ir.InsertionPoint(outer_loop.body):
        o = outer_loop.induction_variable
        out = outer_loop.inner_iter_args[0]
        # The first row (none where n is 0): the input's, or zeros.
        first = scf.ForOp(c0, arith.minui(n, c1), c1, [out])
        with ir.InsertionPoint(first.body):
            i0 = row(c0)
            scf.YieldOp([each_chunk(first.inner_iter_args[0],
                                    lambda cur, j: zero if exclusive else read(x3, o, i0, j),
                                    o, i0)])
        # Every other row: the previous output row plus the input row (the previous one's
        # where exclusive).
        rest = scf.ForOp(c1, n, c1, [first.results[0]])
        with ir.InsertionPoint(rest.body):
            step = rest.induction_variable
            i, prev = row(step), row(arith.subi(step, c1))
            src = prev if exclusive else i
            scf.YieldOp([each_chunk(rest.inner_iter_args[0],
                                    lambda cur, j: add(read(cur, o, prev, j), read(x3, o, src, j)),
                                    o, i)])
        scf.YieldOp([rest.results[0]])
    return outer_loop.results[0]


@lowering("mo.cumsum")
@in_f32  # 16-bit floats and float8 accumulate in f32, as torch does on the CPU
def _cumsum(ctx: LoweringContext) -> list[ir.Value]:
    x_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    axis = ctx.axis(x_t.rank)
    flags = {"exclusive": bool(ctx.int_attr("exclusive")),
             "reverse": bool(ctx.int_attr("reverse")),
             "add": BINARY["add"][kind_of(x_t.element_type)]}
    et = element_type(x_t.element_type)
    zero = scalar(et, 0)
    # Every dim value is emitted here, before the loops: values cached inside their bodies
    # would not dominate later uses.
    dims = ctx.dims(x_t)
    (n,) = _static_or_value([dims[axis]], ctx)
    if axis == x_t.rank - 1 and kind_of(x_t.element_type) != "bool":
        # Along the last axis: a vector of lanes at a time (the scalar loop carried one sum
        # through a dependent add per element, 6x PyTorch on [512, 4096], as plain loops).
        outer = _product(ctx, dims[:axis])
        x2 = _reshaped(ctx, ctx.operands[0], [outer, dims[axis]], et)
        (hi,) = _static_or_value([outer], ctx)
        out2 = _vector_scan_rows(ctx, x2, tensor.empty([outer, dims[axis]], et), hi, n, et,
                                 **flags)
        return [_reshaped(ctx, out2, ctx.dims(out_t), et)]
    if kind_of(x_t.element_type) != "bool":
        # Along another axis: x as [outer, n, inner] (a view), each row of inner elements the
        # previous output row plus an input row, in vectors (the scalar loops of the scan
        # below: [512, 4096] along axis 0 1.075 ms, a recorded fallback).
        outer, inner = _product(ctx, dims[:axis]), _product(ctx, dims[axis + 1:])
        x3 = _reshaped(ctx, ctx.operands[0], [outer, dims[axis], inner], et)
        hi, width = _static_or_value([outer, inner], ctx)
        out3 = _vector_scan_columns(ctx, x3, tensor.empty([outer, dims[axis], inner], et), hi,
                                    n, width, et, **flags)
        return [_reshaped(ctx, out3, ctx.dims(out_t), et)]
    if axis == 0:
        # Each x[i] is contiguous: one pass, the running sum has the shape of x[0].
        rest = dims[1:]
        acc = fill(zero, tensor.empty(rest, et))
        return [_scan(ctx, ctx.operands[0], ctx.empty(out_t), acc, [], n, rest, **flags)]
    # x as [outer, n, inner] (a view): a pass per outer index over contiguous rows of `inner`
    # elements. Scanning x[..., i, ...] for all outer indices at once strides through memory
    # (a last-axis cumsum was 7x slower than numpy); a last axis carries a scalar sum.
    outer, inner = _product(ctx, dims[:axis]), _product(ctx, dims[axis + 1:])
    rest = [] if inner == 1 else [inner]
    x3 = _reshaped(ctx, ctx.operands[0], [outer, dims[axis], *rest], et)
    out3 = tensor.empty([outer, dims[axis], *rest], et)
    (hi,) = _static_or_value([outer], ctx)
    rows = scf.ForOp(ctx.index(0), hi, ctx.index(1), [tensor.empty(rest, et), out3])
    with ir.InsertionPoint(rows.body):
        acc, out = rows.inner_iter_args
        out = _scan(ctx, x3, out, fill(zero, acc), [rows.induction_variable], n, rest, **flags)
        scf.YieldOp([acc, out])
    return [_reshaped(ctx, rows.results[1], ctx.dims(out_t), et)]


@lowering("mo.band_part")
def _band_part(ctx: LoweringContext) -> list[ir.Value]:
    x_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    if x_t.rank < 2:
        raise ctx.error(f"operand rank {x_t.rank} < 2")
    lower, upper = ctx.int_attr("num_lower"), ctx.int_attr("num_upper")
    exclude = bool(ctx.int_attr("exclude"))
    rank = x_t.rank
    zero = _zero(element_type(x_t.element_type))
    index = ir.IndexType.get()

    def body(v: ir.Value, _: ir.Value) -> ir.Value:
        m, n = linalg_index(rank - 2), linalg_index(rank - 1)
        keep = arith.constant(ir.IntegerType.get_signless(1), 1)
        # -1 leaves that side of the band unbounded: no comparison at all.
        if lower >= 0:
            below = arith.cmpi(I.sle, arith.subi(m, n), arith.constant(index, lower))
            keep = arith.andi(keep, below)
        if upper >= 0:
            above = arith.cmpi(I.sle, arith.subi(n, m), arith.constant(index, upper))
            keep = arith.andi(keep, above)
        if exclude:
            keep = arith.xori(keep, arith.constant(ir.IntegerType.get_signless(1), 1))
        return arith.select(keep, v, zero)

    return generic([ctx.operands[0]], [ctx.empty(out_t)], [identity_map(rank)] * 2,
                   [PARALLEL] * rank, body)


@lowering("mo.pad")
def _pad(ctx: LoweringContext) -> list[ir.Value]:
    x_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    paddings = ctx.dense_ints("paddings")
    if len(paddings) != 2 * x_t.rank or any(p < 0 for p in paddings):
        raise ctx.error(f"paddings {paddings} must be 2 non-negative entries per dim")
    value = tensor.extract(ctx.operands[1], [])
    out = fill(value, ctx.empty(out_t))
    if 0 in x_t.dims:
        return [out]  # nothing to copy (a static offset at the end of a dim would be rejected)
    offsets: list[Mixed] = [paddings[2 * i] for i in range(x_t.rank)]
    return [insert_slice(ctx.operands[0], out, offsets, ctx.dims(x_t))]


def _range_length(kind: str, start: ir.Value, stop: ir.Value,
                  step: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(length as i64, step == 0 as i1) of ``range(start, stop, step)`` on wide scalars."""
    i64 = _i64()
    if kind == "float":  # f64: ceil((stop - start) / step), NaN and overflow made -1
        zero = scalar(step.type, 0.0)
        q = math.ceil(arith.divf(arith.subf(stop, start), step))
        q = arith.maximumf(q, zero)
        finite = arith.cmpf(F.OLT, q, scalar(step.type, float(2**62)))  # false for NaN
        length = arith.select(finite, arith.fptosi(i64, arith.select(finite, q, zero)),
                              scalar(i64, -1))
        return length, arith.cmpf(F.OEQ, step, zero)
    zero = scalar(i64, 0)
    is_zero = arith.cmpi(I.eq, step, zero)
    safe = arith.select(is_zero, scalar(i64, 1), step)
    length = arith.maxsi(arith.ceildivsi(arith.subi(stop, start), safe), zero)
    return length, is_zero


@lowering("mo.range")
def _range(ctx: LoweringContext) -> list[ir.Value]:
    out_t = ctx.result_types[0]
    element = out_t.element_type
    kind = kind_of(element)
    if kind == "bool":
        raise ctx.error("range of bool")
    wide = ir.F64Type.get() if kind == "float" else _i64()
    wide_name = "f64" if kind == "float" else "si64"
    # Operands as f64/i64 scalars: the values are computed wide and rounded once.
    start, stop, step = (convert_scalar(tensor.extract(v, []), t.element_type,
                                        wide_name if kind != "uint" else "ui64")
                         for v, t in zip(ctx.operands, ctx.operand_types))
    length, step_zero = _range_length(kind, start, stop, step)
    if ctx.fn.is_new_symbol(out_t.dims[0]):
        # A length only the data determines: the op binds it (0 where step is 0 or the
        # length is not finite, -1).
        ctx.fn.define_size(str(out_t.dims[0]), arith.index_cast(
            ir.IndexType.get(), arith.select(step_zero, scalar(_i64(), 0), length)), "mo.range")
        failed = arith.ori(step_zero, arith.cmpi(I.slt, length, scalar(_i64(), 0)))
        ctx.add_check(failed, "mo.range: step is 0, or ceil((stop - start) / step) is not "
                              "finite")
    else:
        declared = arith.index_cast(_i64(), ctx.dim_value(out_t.dims[0]))
        failed = arith.ori(step_zero, arith.cmpi(I.ne, length, declared))
        ctx.add_check(failed, f"mo.range: step is 0, or ceil((stop - start) / step) is not the "
                              f"declared length (out_dim) {out_t.dims[0]}")
    if out_t.dims[0] == 0:
        return [ctx.empty(out_t)]  # checked, nothing to write

    def body(_: ir.Value) -> ir.Value:
        i = arith.index_cast(_i64(), linalg_index(0))
        if kind == "float":
            v = arith.addf(start, arith.mulf(arith.sitofp(wide, i), step))
            return convert_scalar(v, "f64", element)
        v = arith.addi(start, arith.muli(i, step))
        width = ir.IntegerType(element_type(element)).width
        return v if width == 64 else arith.trunci(element_type(element), v)

    return generic([], [ctx.empty(out_t)], [identity_map(1)], [PARALLEL], body)


@lowering("mo.rebind")
def _rebind(ctx: LoweringContext) -> list[ir.Value]:
    x_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    if x_t.rank != out_t.rank:
        raise ctx.error(f"rank {x_t.rank} rebound to rank {out_t.rank}")
    message = ir.StringAttr(ctx.attr("message")).value
    have, want = ctx.dims(x_t), ctx.dims(out_t)
    failed = None
    sizes: list[Mixed] = []
    for a, b, h, w in zip(x_t.dims, out_t.dims, have, want):
        if _parse_dim(a) == _parse_dim(b):
            sizes.append(h)
            continue
        if isinstance(h, int) and isinstance(w, int):
            raise ctx.error(f"static dim {a} rebound to {b}")
        hv, wv = _static_or_value([h, w], ctx)
        ne = arith.cmpi(I.ne, hv, wv)
        failed = ne if failed is None else arith.ori(failed, ne)
        sizes.append(arith.minsi(hv, wv))
    if failed is None:
        return [ctx.operands[0]]  # provably the same shape: only the type changes
    shapes = (f"[{', '.join(str(d) for d in x_t.dims)}] to "
              f"[{', '.join(str(d) for d in out_t.dims)}]")
    ctx.add_check(failed, f"rebind: {message} (rebinding {shapes})" if message
                  else f"rebind: the tensor's shape does not match when rebinding {shapes}")
    if 0 in out_t.dims:
        return [ctx.empty(out_t)]  # checked, nothing to copy
    # Copy what exists into a zero-filled tensor of the declared shape: downstream ops trust
    # the declared dims, and the call raises anyway.
    et = element_type(x_t.element_type)
    part_t = ir.RankedTensorType.get([s if isinstance(s, int) else DYNAMIC for s in sizes], et)
    part = extract_slice(part_t, ctx.operands[0], [0] * x_t.rank, sizes, [1] * x_t.rank)
    out = fill(_zero(et), ctx.empty(out_t))
    return [insert_slice(part, out, [0] * x_t.rank, sizes)]


@lowering("mo.shape_to_tensor")
def _shape_to_tensor(ctx: LoweringContext) -> list[ir.Value]:
    out_t: MOTensorType = ctx.result_types[0]
    dims = shape_dims(ctx.name, ir.StringAttr(ctx.attr("dims")).value)
    mo_dims = [int(d) if isinstance(d, StaticDim) else str(d) for d in dims]
    values = [arith.index_cast(_i64(), ctx.dim_value(d)) for d in mo_dims]
    return [tensor.from_elements(ctx.tensor_type(out_t), values)]


def _tile_static(ctx: LoweringContext, have: list[int], want: list[int]) -> ir.Value:
    """``tile`` of static sizes: x broadcast over a repeat dim before each tiled dim (out
    ``[512, 4096]`` of x ``[512, 1024]`` as ``[512, 4, 1024]``), one elementwise generic
    reshaped to the result. Scheduled like any broadcast: threads, vectors, x read once per
    row; the copies of the whole x (one per repeat, each a pass over x) ran on one thread:
    512 x 1024 by (1, 4), two threads, 0.55 ms against torch's 0.21."""
    shape: list[int] = []
    reads: list[ir.AffineExpr] = []
    groups: list[list[int]] = []
    for d, o in zip(have, want):
        if o != d:
            shape.append(o // d)
            groups.append([len(shape) - 1, len(shape)])
        else:
            groups.append([len(shape)])
        reads.append(ir.AffineDimExpr.get(len(shape)))
        shape.append(d)
    out_t = ctx.tensor_type(ctx.result_types[0])
    et = out_t.element_type
    empty = tensor.empty(shape, et)
    maps = [ir.AffineMap.get(len(shape), 0, reads), ir.AffineMap.get_identity(len(shape))]
    tiled = generic([ctx.operands[0]], [empty], maps, [PARALLEL] * len(shape),
                    lambda v, _: v)[0]
    return tensor.collapse_shape(out_t, tiled, groups)


@lowering("mo.tile")
def _tile(ctx: LoweringContext) -> list[ir.Value]:
    x_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    have, want = ctx.dims(x_t), ctx.dims(out_t)
    if 0 in x_t.dims:
        return [ctx.empty(out_t)]
    if all(isinstance(d, int) for d in have + want):
        return [_tile_static(ctx, have, want)]
    # Symbolic sizes: copies of x inserted at each multiple of its dims, plain copies into the
    # result buffer.
    loops: list[tuple[int, ir.Value, ir.Value]] = []  # (dim, count, dim size) of repeated dims
    for i, (d, o) in enumerate(zip(have, want)):
        if isinstance(d, int) and isinstance(o, int):
            if o == d:
                continue
            loops.append((i, ctx.index(o // d), ctx.index(d)))
            continue
        dv, ov = _static_or_value([d, o], ctx)
        # A dim 0 at run time (its result is 0 too) makes no copies; never divide by it.
        empty = arith.cmpi(I.eq, dv, ctx.index(0))
        count = arith.divui(ov, arith.select(empty, ctx.index(1), dv))
        loops.append((i, arith.select(empty, ctx.index(0), count), dv))
    x, out = ctx.operands[0], ctx.empty(out_t)
    offsets: list[Mixed] = [0] * x_t.rank

    def nest(k: int, out: ir.Value) -> ir.Value:
        if k == len(loops):
            return insert_slice(x, out, offsets, have)
        axis, count, size = loops[k]
        loop = scf.ForOp(ctx.index(0), count, ctx.index(1), [out])
        with ir.InsertionPoint(loop.body):
            offsets[axis] = arith.muli(loop.induction_variable, size)
            scf.YieldOp([nest(k + 1, loop.inner_iter_args[0])])
        return loop.results[0]

    return [nest(0, out)]
