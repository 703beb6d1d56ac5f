"""reshape, transpose, broadcast_to, concat and slice (Python slice semantics at runtime)."""

from __future__ import annotations

from collections.abc import Sequence

from mlir import ir
from mlir.dialects import arith, linalg, tensor

from max.compiler.lowering.builders import (
    PARALLEL,
    broadcast_map,
    generic,
    identity_map,
    linalg_index,
    transposed,
)
from max.compiler.lowering.context import DYNAMIC, LoweringContext
from max.compiler.lowering.registry import lowering
from max.dialects.mo.types import MOTensorType, parse_tensor_type

Mixed = int | ir.Value
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def mixed(values: Sequence[Mixed]) -> tuple[list[ir.Value], ir.DenseI64ArrayAttr]:
    """Splits mixed static/dynamic sizes into (dynamic operands, static array with ? marks)."""
    dyn = [v for v in values if not isinstance(v, int)]
    static = [v if isinstance(v, int) else DYNAMIC for v in values]
    return dyn, ir.DenseI64ArrayAttr.get(static)


def insert_slice(src: ir.Value, dest: ir.Value, offsets: Sequence[Mixed],
                 sizes: Sequence[Mixed]) -> ir.Value:
    """tensor.insert_slice with unit strides."""
    (do, so), (ds, ss), (dst, sst) = mixed(offsets), mixed(sizes), mixed([1] * len(sizes))
    return tensor.insert_slice(src, dest, do, ds, dst, so, ss, sst)


def extract_slice(result: ir.Type, src: ir.Value, offsets: Sequence[Mixed],
                  sizes: Sequence[Mixed], strides: Sequence[Mixed]) -> ir.Value:
    """tensor.extract_slice from mixed values."""
    (do, so), (ds, ss), (dt, st) = mixed(offsets), mixed(sizes), mixed(strides)
    return tensor.extract_slice(result, src, do, ds, dt, so, ss, st)


def reshape_to(ctx: LoweringContext, x: ir.Value, t: MOTensorType) -> ir.Value:
    """``tensor.reshape`` of the contiguous tensor ``x`` to the shape of ``t`` (a view, no copy).

    Not ``tensor.expand_shape``: ``memref.expand_shape`` allows one dynamic size per group.
    """
    shape = tensor.from_elements(ir.RankedTensorType.get([t.rank], ir.IndexType.get()),
                                 [ctx.dim_value(d) for d in t.dims])
    return tensor.reshape(ctx.tensor_type(t), x, shape)


@lowering("mo.reshape")
def _reshape(ctx: LoweringContext) -> list[ir.Value]:
    x_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    if x_t.is_static and out_t.is_static:
        n_in = 1
        for d in x_t.dims:
            n_in *= d
        n_out = 1
        for d in out_t.dims:
            n_out *= d
        if n_in != n_out:
            raise ctx.error(f"cannot reshape {x_t.dims} ({n_in} elements) to {out_t.dims}")
    return [reshape_to(ctx, ctx.operands[0], out_t)]


@lowering("mo.transpose")
def _transpose(ctx: LoweringContext) -> list[ir.Value]:
    x_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    perm = ctx.dense_ints("permutation")
    if sorted(perm) != list(range(x_t.rank)):
        raise ctx.error(f"permutation {perm} is not a permutation of rank {x_t.rank}")
    return [transposed(ctx.operands[0], perm, ctx.empty(out_t))]


@lowering("mo.broadcast_to")
def _broadcast_to(ctx: LoweringContext) -> list[ir.Value]:
    x_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    if x_t.rank > out_t.rank:
        raise ctx.error(f"cannot broadcast rank {x_t.rank} to rank {out_t.rank}")
    maps = [broadcast_map(x_t, out_t), identity_map(out_t.rank)]
    return generic([ctx.operands[0]], [ctx.empty(out_t)], maps, [PARALLEL] * out_t.rank,
                   lambda v, _: v)


def _absorbed(op: ir.Operation) -> bool:
    """Whether ``op`` is an ``mo.concat`` whose one use is an ``mo.concat`` on the same axis in
    the same block: that consumer then copies its leaves itself, and ``op`` emits nothing."""
    if op.name != "mo.concat":
        return False
    uses = list(op.results[0].uses)
    if len(uses) != 1:
        return False
    user = uses[0].owner.operation
    return (user.name == "mo.concat" and user.block == op.block
            and user.attributes["axis"] == op.attributes["axis"])


def _leaves(op: ir.Operation) -> list[ir.Value]:
    """The MO operands of a tree of absorbed concats under ``op``, left to right."""
    leaves: list[ir.Value] = []
    pending = list(reversed(list(op.operands)))  # a stack, not recursion: chains can be long
    while pending:
        v = pending.pop()
        owner = v.owner
        if not isinstance(owner, ir.Block) and _absorbed(owner.operation):
            pending.extend(reversed(list(owner.operation.operands)))
        else:
            leaves.append(v)
    return leaves


@lowering("mo.concat")
def _concat(ctx: LoweringContext) -> list[ir.Value]:
    """One ``tensor.empty`` and one ``insert_slice`` per leaf of the whole chain.

    ``mo.concat`` is binary, so an N-way concat arrives as a chain of N-1: lowered one by one,
    each copied everything before it again (O(N^2) data; a stack of 64 [256, 256] was 160x
    numpy). A concat whose only use is the next concat on the same axis lowers to a
    placeholder (dead once the chain's last concat has copied its operands directly).
    """
    out_t = ctx.result_types[0]
    axis = ctx.axis(out_t.rank)
    if _absorbed(ctx.op):
        return [ctx.empty(out_t)]
    out = ctx.empty(out_t)
    offset: Mixed = 0
    for leaf in _leaves(ctx.op):
        v, t = ctx.lowered[leaf], parse_tensor_type(leaf.type)
        if t.rank != out_t.rank:
            raise ctx.error(f"operand rank {t.rank} differs from result rank {out_t.rank}")
        sizes = ctx.dims(t)
        offsets: list[Mixed] = [0] * t.rank
        offsets[axis] = offset
        out = insert_slice(v, out, offsets, sizes)
        size = sizes[axis]
        if isinstance(offset, int) and isinstance(size, int):
            offset = offset + size
        else:
            as_val = [ctx.index(x) if isinstance(x, int) else x for x in (offset, size)]
            offset = arith.addi(as_val[0], as_val[1])
    return [out]


def _static_slice(n: int, start: int, stop: int, step: int) -> tuple[int, int]:
    """(first index, length) exactly as Python's slice.indices."""
    first, _, _ = slice(start, stop, step).indices(n)
    return first, len(range(*slice(start, stop, step).indices(n)))


def _dynamic_slice(ctx: LoweringContext, n: ir.Value, start: int, stop: int,
                   step: int) -> tuple[ir.Value, ir.Value]:
    """(first index, length) of slice(start, stop, step) over a runtime size n, as index values."""
    lower = ctx.index(0 if step > 0 else -1)
    upper = n if step > 0 else arith.subi(n, ctx.index(1))

    def bound(v: int) -> ir.Value:
        # Python clamps: negative bounds count from the end, then clip to [lower, upper].
        if v < 0:
            return arith.maxsi(arith.addi(n, ctx.index(max(v, -(1 << 62)))), lower)
        return arith.minsi(ctx.index(min(v, 1 << 62)), upper)

    b0, b1 = bound(start), bound(stop)
    hi, lo = (b1, b0) if step > 0 else (b0, b1)
    span = arith.subi(hi, lo)
    length = arith.addi(arith.divsi(arith.subi(span, ctx.index(1)), ctx.index(abs(step))),
                        ctx.index(1))
    positive = arith.cmpi(arith.CmpIPredicate.sgt, span, ctx.index(0))
    return b0, arith.select(positive, length, ctx.index(0))


@lowering("mo.slice")
def _slice(ctx: LoweringContext) -> list[ir.Value]:
    x_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    starts, stops, steps = (ctx.dense_ints(k) for k in ("starts", "stops", "steps"))
    if not len(starts) == len(stops) == len(steps) == x_t.rank == out_t.rank:
        raise ctx.error("starts/stops/steps must have one entry per dim")
    if 0 in steps:
        raise ctx.error("slice step cannot be zero")
    firsts: list[Mixed] = []
    lengths: list[Mixed] = []
    checked = False
    for i, (d, a, b, s) in enumerate(zip(x_t.dims, starts, stops, steps)):
        want = out_t.dims[i]
        if isinstance(d, int):
            f, ln = _static_slice(d, a, b, s)
            if isinstance(want, int) and want != ln:
                raise ctx.error(f"dim {i}: slice has length {ln}, result type says {want}")
            firsts.append(f)
            lengths.append(ln)
            continue
        f, ln = _dynamic_slice(ctx, ctx.dim_value(d), a, b, s)
        firsts.append(f)
        whole = ((s == 1 and a in (0, I64_MIN) and b == I64_MAX)
                 or (s == -1 and a in (-1, I64_MAX) and b == I64_MIN))
        if want == d and whole:
            lengths.append(ln)  # the whole dim (x[::-1] too): the length is the dim itself
            continue
        # The declared length (a user's out_dim) may be wrong at run time: check it, and read
        # only what exists; the result is padded to the declared size and the call raises.
        declared = ctx.dim_value(want)
        if want == 1 and s == 1 and (b == a + 1 or (a == -1 and b == I64_MAX)):
            # x[i] of a symbolic dim (or x[i:i+1]): the element i does not exist. Says
            # "index" so that the engine raises IndexError, as numpy does.
            message = f"mo.slice: index {a} is out of bounds for dim {i} of size {d}"
        else:
            message = f"mo.slice: dim {i} of the slice does not have the declared length {want}"
        ctx.add_check(arith.cmpi(arith.CmpIPredicate.ne, ln, declared), message)
        lengths.append(arith.minsi(ln, declared))
        checked = True
    if 0 in out_t.dims:
        # An empty result reads nothing. (tensor.extract_slice rejects a static offset at or
        # past the end of its dim even for a size-0 slice, e.g. x[1:] of a length-1 dim.)
        return [ctx.empty(out_t)]
    if not checked:
        result = ctx.tensor_type(out_t)
        if all(s > 0 for s in steps):
            return [extract_slice(result, ctx.operands[0], firsts, lengths, steps)]
        return [_strided_gather(ctx, ctx.empty(out_t), firsts, steps)]
    et = ctx.tensor_type(out_t).element_type
    part_t = ir.RankedTensorType.get([v if isinstance(v, int) else DYNAMIC for v in lengths], et)
    if all(s > 0 for s in steps):
        part = extract_slice(part_t, ctx.operands[0], firsts, lengths, steps)
    else:
        part = _strided_gather(ctx, tensor.empty(list(lengths), et), firsts, steps)
    zero = arith.constant(et, ir.FloatAttr.get(et, 0.0) if isinstance(et, ir.FloatType)
                          else ir.IntegerAttr.get(et, 0))
    padded = linalg.fill(zero, outs=[ctx.empty(out_t)])
    return [insert_slice(part, padded, [0] * out_t.rank, lengths)]


def _strided_gather(ctx: LoweringContext, dest: ir.Value, firsts: Sequence[Mixed],
                    steps: Sequence[int]) -> ir.Value:
    """Negative steps: each result element reads x[first + i * step] (always in bounds)."""
    rank = ir.RankedTensorType(dest.type).rank
    first_vals = [ctx.index(f) if isinstance(f, int) else f for f in firsts]
    step_vals = [ctx.index(s) for s in steps]
    x = ctx.operands[0]

    def body(_: ir.Value) -> ir.Value:
        idx = [arith.addi(f, arith.muli(linalg_index(i), s))
               for i, (f, s) in enumerate(zip(first_vals, step_vals))]
        return tensor.extract(x, idx)

    return generic([], [dest], [identity_map(rank)], [PARALLEL] * rank, body)[0]
