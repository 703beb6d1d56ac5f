"""argsort (keys up to 32 bits sorted as words, ``word_sort.py``; wider ones by a stable
merge sort; insertion into a buffer of k for a small top-k),
gather_nd, scatter, scatter_nd and repeat_interleave.

User indices are untrusted: each is wrapped once if negative and, outside ``[-n, n)``, clamped
for a read or dropped for a write, and reported through the op's runtime check. Scatters walk
their indices in row-major order with scalar loops, so the last duplicate wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlir import ir
from mlir.dialects import arith, math, scf, tensor

from max.compiler.lowering.builders import (
    PARALLEL,
    dims_map,
    fill,
    generic,
    index_constant,
    linalg_index,
    scalar,
)
from max.compiler.lowering.context import MAX_DATA_SIZE, LoweringContext, element_type, kind_of
from max.compiler.lowering.float8 import decode, is_float8
from max.compiler.lowering.gather import _normalize, any_oob, unsigned_indices, where
from max.compiler.lowering.registry import lowering
from max.compiler.lowering.scalar_loops import for_, if_, nest, while_
from max.compiler.lowering.shape_ops import extract_slice, insert_slice, mixed
from max.compiler.lowering import word_sort

I = arith.CmpIPredicate
F = arith.CmpFPredicate


def _index() -> ir.Type:
    return ir.IndexType.get()


_c = index_constant  # short: on most lines


def _dims(ctx: LoweringContext, t: object) -> list[ir.Value]:
    return [ctx.dim_value(d) for d in t.dims]  # type: ignore[attr-defined]


# -- mo.argsort --------------------------------------------------------------------------------


def _precedes(mo_element: str, descending: bool) -> Callable[[ir.Value, ir.Value], ir.Value]:
    """``before(a, b)``: whether key a sorts strictly before key b (NaN above every number)."""
    kind = kind_of(mo_element)
    if kind == "float":
        def widen(v: ir.Value) -> ir.Value:
            if is_float8(mo_element):
                return decode(v, mo_element)
            if mo_element in ("f16", "bf16"):  # compared exactly in f32
                return arith.extf(ir.F32Type.get(), v)
            return v

        def before(a: ir.Value, b: ir.Value) -> ir.Value:
            a, b = widen(a), widen(b)
            hi, lo = (a, b) if descending else (b, a)
            # ordered `hi > lo`, or hi NaN and lo a number
            nan_first = arith.andi(arith.cmpf(F.UNO, hi, hi), arith.cmpf(F.ORD, lo, lo))
            return arith.ori(arith.cmpf(F.OGT, hi, lo), nan_first)
        return before
    pred = {("sint", False): I.slt, ("sint", True): I.sgt}.get(
        (kind, descending), I.ugt if descending else I.ult)
    return lambda a, b: arith.cmpi(pred, a, b)


@lowering("mo.argsort")
def _argsort(ctx: LoweringContext) -> list[ir.Value]:
    (x,) = ctx.operands
    (x_t,), out_t = ctx.operand_types, ctx.result_types[0]
    axis = ctx.axis(x_t.rank)
    descending = bool(ctx.int_attr("descending"))
    before = _precedes(x_t.element_type, descending)
    i64 = ir.IntegerType.get_signless(64)
    n = ctx.dim_value(x_t.dims[axis])
    keep = ctx.dim_value(out_t.dims[axis])
    result = initial = ctx.empty(out_t)
    if not (isinstance(x_t.dims[axis], int) and isinstance(out_t.dims[axis], int)):
        # Positions past n stay 0, valid indices for a consumer whenever n > 0.
        result = fill(scalar(i64, 0), result)
        # The type rule proved k <= n for static dims only.
        ctx.add_check(arith.cmpi(I.sgt, keep, n),
                      f"mo.argsort: the result keeps {out_t.dims[axis]} positions of axis "
                      f"{axis}, larger than its size {x_t.dims[axis]}{where(ctx)}")
        keep = arith.minsi(keep, n)
    outer = [ctx.dim_value(d) for i, d in enumerate(x_t.dims) if i != axis]

    def lines(scratch: Callable[[], list[ir.Value]], body: LineBody,
              threaded: bool = False) -> ir.Value:
        return _over_lines(ctx, out_t, outer, axis, result, scratch, body,
                           threaded and _threaded(x_t.dims, axis), zeroed=result is not initial)

    def key(ivs: list[ir.Value], pos: ir.Value) -> ir.Value:
        if pos.type != _index():
            pos = arith.index_cast(_index(), pos)
        coords = [*ivs[:axis], pos, *ivs[axis:]]
        return tensor.extract(x, coords)

    def merge(ivs: list[ir.Value], src: ir.Value, dst: ir.Value, w: ir.Value) -> ir.Value:
        """Merges the sorted runs of length w of src pairwise into dst (runs of 2w)."""
        last = arith.subi(n, _c(1))

        def run(lo: ir.Value, args: list[ir.Value]) -> list[ir.Value]:
            mid = arith.minsi(arith.addi(lo, w), n)
            hi = arith.minsi(arith.addi(arith.addi(lo, w), w), n)

            def step(t: ir.Value, a: list[ir.Value]) -> list[ir.Value]:
                i, j, out = a
                # Both heads are read clamped; the flags below pick the valid one.
                left = tensor.extract(src, [arith.minsi(i, last)])
                right = tensor.extract(src, [arith.minsi(j, last)])
                right_first = before(key(ivs, right), key(ivs, left))
                take_left = arith.andi(
                    arith.cmpi(I.slt, i, mid),
                    arith.ori(arith.cmpi(I.sge, j, hi),
                              arith.xori(right_first, scalar(right_first.type, 1))))
                out = tensor.insert(arith.select(take_left, left, right), out, [t])
                inc = arith.index_cast(_index(), arith.extui(ir.IntegerType.get_signless(64),
                                                             take_left))
                return [arith.addi(i, inc), arith.addi(j, arith.subi(_c(1), inc)), out]

            return [for_(lo, hi, _c(1), [lo, mid, args[0]], step)[2]]

        return for_(_c(0), n, arith.addi(w, w), [dst], run)[0]

    def line(ivs: list[ir.Value], args: list[ir.Value]) -> list[ir.Value]:
        res, a, b = args
        a = for_(_c(0), n, _c(1), [a],
                 lambda t, s: [tensor.insert(arith.index_cast(i64, t), s[0], [t])])[0]
        # ceil(log2 n) merge passes, two per iteration (a -> b -> a) so that each buffer
        # stays itself across iterations and bufferizes in place.
        n64 = arith.index_cast(i64, n)
        bits = arith.subi(scalar(i64, 64), math.ctlz(arith.subi(n64, scalar(i64, 1))))
        passes = arith.select(arith.cmpi(I.sle, n64, scalar(i64, 1)), scalar(i64, 0), bits)
        pairs = arith.index_cast(_index(), arith.shrui(arith.addi(passes, scalar(i64, 1)),
                                                       scalar(i64, 1)))

        def two(p: ir.Value, s: list[ir.Value]) -> list[ir.Value]:
            w = arith.shli(_c(1), arith.addi(p, p))
            b2 = merge(ivs, s[0], s[1], w)
            return [merge(ivs, b2, s[0], arith.addi(w, w)), b2]

        a, b = for_(_c(0), pairs, _c(1), [a, b], two)

        def write(t: ir.Value, s: list[ir.Value]) -> list[ir.Value]:
            coords = [*ivs[:axis], t, *ivs[axis:]]
            return [tensor.insert(tensor.extract(a, [t]), s[0], coords)]

        return [for_(_c(0), keep, _c(1), [res], write)[0], a, b]

    k_static, n_static = out_t.dims[axis], x_t.dims[axis]
    if isinstance(k_static, int) and 0 < k_static <= SELECT_MAX_K and k_static != n_static:
        def select(ivs: list[ir.Value], at: list[ir.Value],
                   args: list[ir.Value]) -> list[ir.Value]:
            res, buf = args
            buf = _select_line(n, k_static, lambda p: key(ivs, p), before, buf)

            def write(t: ir.Value, s: list[ir.Value]) -> list[ir.Value]:
                coords = [*at[:axis], t, *at[axis:]]
                return [tensor.insert(tensor.extract(buf, [t]), s[0], coords)]

            return [for_(_c(0), keep, _c(1), [res], write)[0], buf]

        # Zeros: every slot holds a valid position (n > 0 wherever one is read), even unfilled.
        return [lines(lambda: [fill(scalar(i64, 0), tensor.empty([k_static], i64))], select,
                      threaded=True)]
    if word_sort.applies(x_t.element_type, n_static if isinstance(n_static, int) else None):
        if not isinstance(n_static, int):
            ctx.add_check(arith.cmpi(I.sge, n, _c(word_sort.MAX_N)),
                          f"mo.argsort: axis {axis} has more than 2^32 - 1 elements{where(ctx)}")

        # A static prefix (top_k of more than SELECT_MAX_K): the words that can be in it
        # are selected first, only they sorted.
        prefix = isinstance(k_static, int) and k_static != n_static

        def words_line(ivs: list[ir.Value], at: list[ir.Value],
                       args: list[ir.Value]) -> list[ir.Value]:
            res, *scratch = args
            if prefix:
                words, *scratch = word_sort.select_line(
                    n, keep, x_t.element_type, descending, lambda t: key(ivs, t), *scratch)
            else:
                words, *scratch = word_sort.sort_line(
                    n, n_static if isinstance(n_static, int) else None, x_t.element_type,
                    descending, lambda t: key(ivs, t), *scratch)

            def write(t: ir.Value, s: list[ir.Value]) -> list[ir.Value]:
                coords = [*at[:axis], t, *at[axis:]]
                word = tensor.extract(words, [t])
                return [tensor.insert(word_sort.position(word), s[0], coords)]

            return [for_(_c(0), keep, _c(1), [res], write)[0], *scratch]

        def scratch() -> list[ir.Value]:
            # Two distinct buffers: identical tensor.empty ops would be merged by CSE.
            return [tensor.empty([n], i64), fill(scalar(i64, 0), tensor.empty([n], i64)),
                    tensor.empty([word_sort.MAX_DIGITS * word_sort.RADIX], _index())]

        # One thread: its two line-sized buffers are made once and reused by every line (a
        # forall part with buffers of its own gave no speed-up: 8 lines of 49152, top 256,
        # 2.6 ms either way).
        return [lines(scratch, words_line)]
    # Two distinct buffers: identical tensor.empty ops would be merged by CSE into one.
    scratch = [tensor.empty([n], i64), fill(scalar(i64, 0), tensor.empty([n], i64))]
    return [nest(outer, [result, *scratch], line)[0]]


# (the line's coordinates to read x at, to write the result at, and [result, *scratch])
LineBody = Callable[[list[ir.Value], list[ir.Value], list[ir.Value]], list[ir.Value]]
#: Lines are shared out over threads (their first outer dim) from this many elements in all;
#: 1000 lines of 128: 1.5 ms on one thread.
THREADED_ELEMENTS = 1 << 15


def _threaded(dims: Sequence[int | str], axis: int) -> bool:
    """Whether the lines of a top-k over ``axis`` of ``dims`` (kept in a buffer of k) go over
    threads: two or more of them along the first outer dim and enough elements, or symbolic
    sizes."""
    outer = [d for i, d in enumerate(dims) if i != axis]
    if not outer:
        return False
    if any(not isinstance(d, int) for d in dims):
        return True
    total = 1
    for d in dims:
        total *= int(d)
    return int(outer[0]) >= 2 and total >= THREADED_ELEMENTS


def _over_lines(ctx: LoweringContext, out_t: object, outer: list[ir.Value], axis: int,
                result: ir.Value, scratch: Callable[[], list[ir.Value]], body: LineBody,
                threaded: bool, zeroed: bool) -> ir.Value:
    """``result`` threaded through ``body`` for every line (a nest over the outer dims, the
    scratch buffers carried from line to line). ``threaded``: the first outer dim is an
    ``scf.forall`` (OpenMP after the schedule), each of its iterations with its own scratch
    and its own part of the result (``zeroed``: a zero-filled one, as ``result``).
    ``outer``: the sizes of the input's dims but ``axis``."""
    if not threaded:
        return nest(outer, [result, *scratch()],
                    lambda ivs, args: body(ivs, ivs, args))[0]
    first = 0 if axis != 0 else 1  # the result dim of the first outer dim
    rank = len(out_t.dims)  # type: ignore[attr-defined]
    dims = list(out_t.dims)  # type: ignore[attr-defined]
    sizes = [1 if d == first else dims[d] if isinstance(dims[d], int) else ctx.dim_value(dims[d])
             for d in range(rank)]
    i64 = ir.IntegerType.get_signless(64)
    forall = scf.ForallOp([0], [outer[0]], [1], [result])
    with ir.InsertionPoint(forall.body):
        i = forall.induction_variables[0]
        part = tensor.EmptyOp(sizes, i64).result
        if zeroed:
            part = fill(scalar(i64, 0), part)
        part = nest(outer[1:], [part, *scratch()],
                    lambda ivs, args: body([i, *ivs], [_c(0), *ivs], args))[0]
        with ir.InsertionPoint(forall.terminator().region.blocks[0]):
            offsets = [i if d == first else 0 for d in range(rank)]
            (do, so), (ds, ss), (dt, st) = mixed(offsets), mixed(sizes), mixed([1] * rank)
            tensor.parallel_insert_slice(part, forall.inner_iter_args[0],
                                         do, ds, dt, so, ss, st)
    return forall.results[0]


# A top-k of at most this many positions keeps a sorted buffer of k and inserts into it (O(n k)
# at worst, ~O(n) on most data: an element is compared with the k-th best, rarely inserted);
# a larger one is a radix select of words (word_sort.select_line), or for 64-bit keys a sort
# of the whole line (O(n log n)).
SELECT_MAX_K = 64


def _select_line(n: ir.Value, k: int, key: Callable[[ir.Value], ir.Value],
                 before: Callable[[ir.Value, ir.Value], ir.Value], buf: ir.Value) -> ir.Value:
    """The positions of the first k of the line's stable order, in order, in ``buf``."""
    i64 = ir.IntegerType.get_signless(64)

    def visit(p: ir.Value, args: list[ir.Value]) -> list[ir.Value]:
        buf, count = args
        kp = key(arith.index_cast(i64, p))
        last = tensor.extract(buf, [arith.maxsi(arith.subi(count, _c(1)), _c(0))])
        # Only a strictly better element displaces the k-th: of equals the first stays.
        enters = arith.ori(arith.cmpi(I.slt, count, _c(k)), before(kp, key(last)))

        def insert() -> list[ir.Value]:
            def shifts(a: list[ir.Value]) -> ir.Value:
                j, b = a
                prev = tensor.extract(b, [arith.maxsi(arith.subi(j, _c(1)), _c(0))])
                return arith.andi(arith.cmpi(I.sgt, j, _c(0)), before(kp, key(prev)))

            def shift(a: list[ir.Value]) -> list[ir.Value]:
                j, b = a
                prev = arith.subi(j, _c(1))
                return [prev, tensor.insert(tensor.extract(b, [prev]), b, [j])]

            j, b = while_([arith.minsi(count, _c(k - 1)), buf], shifts, shift)
            return [tensor.insert(arith.index_cast(i64, p), b, [j]),
                    arith.minsi(arith.addi(count, _c(1)), _c(k))]

        return if_(enters, insert, [buf, count])

    return for_(_c(0), n, _c(1), [buf, _c(0)], visit)[0]


# -- mo.gather_nd ------------------------------------------------------------------------------


@lowering("mo.gather_nd")
def _gather_nd(ctx: LoweringContext) -> list[ir.Value]:
    x, indices = ctx.operands
    x_t, i_t = ctx.operand_types
    out_t = ctx.result_types[0]
    unsigned = unsigned_indices(ctx, i_t.element_type)
    b, k = ctx.int_attr("batch_dims"), i_t.dims[-1]
    if not isinstance(k, int) or b + k > x_t.rank or out_t.rank != x_t.rank - k + i_t.rank - 1 - b:
        raise ctx.error(f"bad shapes: x {x_t.dims}, indices {i_t.dims}, batch_dims {b}")
    g = i_t.rank - 1 - b  # gather dims
    sizes = [ctx.dim_value(x_t.dims[b + j]) for j in range(k)]
    maybe_empty = any(not (isinstance(x_t.dims[b + j], int) and x_t.dims[b + j] > 0)
                      for j in range(k))
    et = element_type(out_t.element_type)

    # Each index column indices[..., j] an input of the generic (read through a map, as
    # mo.gather's indices), not a tensor.extract in its body: a gather of whole rows is then
    # the schedule's row gather (vector loads of each row), not plain loops.
    lead = i_t.rank - 1  # b + g
    if 0 in i_t.dims[:lead]:
        return [ctx.empty(out_t)]  # no indices: nothing to gather (nor to slice)
    dyn = ir.ShapedType.get_dynamic_size()
    column_t = ir.RankedTensorType.get(
        [d if isinstance(d, int) else dyn for d in i_t.dims[:lead]],
        ir.RankedTensorType(indices.type).element_type)
    columns = [extract_slice(column_t, indices, [0] * lead + [j],
                             [ctx.dim_value(d) if not isinstance(d, int) else d
                              for d in i_t.dims[:lead]] + [1], [1] * i_t.rank)
               for j in range(k)]

    def body(*args: ir.Value) -> ir.Value:
        loop = [linalg_index(d) for d in range(out_t.rank)]
        coords = list(loop[:b])
        nonempty = None
        for j, raw in enumerate(args[:k]):
            i, _oob = _normalize(ctx, raw, sizes[j], unsigned)
            top = arith.subi(sizes[j], _c(1))
            coords.append(arith.maxsi(arith.minsi(i, top), _c(0)))
            pos = arith.cmpi(I.sgt, sizes[j], _c(0))
            nonempty = pos if nonempty is None else arith.andi(nonempty, pos)
        coords += loop[b + g:]
        if not maybe_empty or nonempty is None:
            return tensor.extract(x, coords)
        # An empty indexed axis has nothing to read: 0 (the check reports the failure).
        return if_(nonempty, lambda: [tensor.extract(x, coords)], [scalar(et, 0)])[0]

    column_map = dims_map(out_t.rank, list(range(lead)))
    out = generic(columns, [ctx.empty(out_t)],
                  [column_map] * k + [ir.AffineMap.get_identity(out_t.rank)],
                  [PARALLEL] * out_t.rank, body)[0]
    # One check per index column against its dim (each a row reduction: vector code).
    for j in range(k):
        ctx.add_check(any_oob(ctx, columns[j], [sizes[j]], unsigned),
                      f"mo.gather_nd: index out of range for dims {list(x_t.dims[b:b + k])} "
                      f"of x{where(ctx)}")
    return [out]


# -- mo.scatter / mo.scatter_nd ----------------------------------------------------------------


@lowering("mo.scatter")
def _scatter(ctx: LoweringContext) -> list[ir.Value]:
    x, updates, indices = ctx.operands
    x_t, _, i_t = ctx.operand_types
    axis = ctx.axis(x_t.rank)
    unsigned = unsigned_indices(ctx, i_t.element_type)
    n = ctx.dim_value(x_t.dims[axis])
    i1 = ir.IntegerType.get_signless(1)

    def body(ivs: list[ir.Value], args: list[ir.Value]) -> list[ir.Value]:
        out, failed = args
        i, oob = _normalize(ctx, tensor.extract(indices, ivs), n, unsigned)
        coords = [*ivs[:axis], i, *ivs[axis + 1:]]
        value = tensor.extract(updates, ivs)
        ok = arith.xori(oob, scalar(i1, 1))
        out = if_(ok, lambda: [tensor.insert(value, out, coords)], [out])[0]
        return [out, arith.ori(failed, oob)]

    out, failed = nest(_dims(ctx, i_t), [x, scalar(i1, 0)], body)
    ctx.add_check(failed, f"mo.scatter: index out of range for axis {axis} of size "
                          f"{x_t.dims[axis]}{where(ctx)}")
    return [out]


@lowering("mo.scatter_nd")
def _scatter_nd(ctx: LoweringContext) -> list[ir.Value]:
    x, updates, indices = ctx.operands
    x_t, u_t, i_t = ctx.operand_types
    unsigned = unsigned_indices(ctx, i_t.element_type)
    k = i_t.dims[-1]
    if not isinstance(k, int) or k > x_t.rank:
        raise ctx.error(f"bad index vector {i_t.dims} for x {x_t.dims}")
    sizes = [ctx.dim_value(d) for d in x_t.dims[:k]]
    tail = ctx.dims(x_t)[k:]  # the slice each index tuple replaces
    i1 = ir.IntegerType.get_signless(1)
    lead = i_t.rank - 1
    slice_t = ir.RankedTensorType.get(
        [d if isinstance(d, int) else ir.ShapedType.get_dynamic_size() for d in x_t.dims[k:]],
        element_type(u_t.element_type))

    def body(ivs: list[ir.Value], args: list[ir.Value]) -> list[ir.Value]:
        out, failed = args
        coords, bad = [], scalar(i1, 0)
        for j in range(k):
            i, oob = _normalize(ctx, tensor.extract(indices, [*ivs, _c(j)]), sizes[j], unsigned)
            coords.append(i)
            bad = arith.ori(bad, oob)

        def write() -> list[ir.Value]:
            if k == x_t.rank:
                return [tensor.insert(tensor.extract(updates, ivs), out, coords)]
            part = extract_slice(slice_t, updates, [*ivs, *[0] * len(tail)],
                                 [*[1] * lead, *tail], [1] * u_t.rank)
            return [insert_slice(part, out, [*coords, *[0] * len(tail)], [*[1] * k, *tail])]

        out = if_(arith.xori(bad, scalar(i1, 1)), write, [out])[0]
        return [out, arith.ori(failed, bad)]

    out, failed = nest(_dims(ctx, i_t)[:-1], [x, scalar(i1, 0)], body)
    if k:
        ctx.add_check(failed, f"mo.scatter_nd: index out of range for dims "
                              f"{list(x_t.dims[:k])} of x{where(ctx)}")
    return [out]


# -- mo.repeat_interleave ----------------------------------------------------------------------


@lowering("mo.repeat_interleave")
def _repeat_interleave(ctx: LoweringContext) -> list[ir.Value]:
    x, repeats = ctx.operands
    x_t, r_t = ctx.operand_types
    out_t = ctx.result_types[0]
    axis = ctx.axis(x_t.rank)
    unsigned = unsigned_indices(ctx, r_t.element_type)
    shared = r_t.dims[0] == 1  # one count for every element
    i1, i64 = ir.IntegerType.get_signless(1), ir.IntegerType.get_signless(64)
    n = ctx.dim_value(x_t.dims[axis])

    def count_of(i: ir.Value) -> ir.Value:
        raw = tensor.extract(repeats, [_c(0) if shared else i])
        return arith.index_castui(_index(), raw) if unsigned else arith.index_cast(_index(), raw)

    if ctx.fn.is_new_symbol(out_t.dims[axis]):
        # The total only the counts determine: summed first (negative counts as 0, reported
        # below; the sum saturates past the size limit), then bound.
        cap = _c(MAX_DATA_SIZE + 1)
        (summed,) = for_(_c(0), n, _c(1), [_c(0)], lambda i, acc: [arith.minsi(
            arith.addi(acc[0], arith.minsi(arith.maxsi(count_of(i), _c(0)), cap)), cap)])
        ctx.fn.define_size(str(out_t.dims[axis]), summed, "mo.repeat_interleave")
    total = ctx.dim_value(out_t.dims[axis])

    def element(i: ir.Value, args: list[ir.Value]) -> list[ir.Value]:
        """Maps the next count positions of the result to source element i."""
        pos, src, bad = args
        count = count_of(i)
        negative = arith.cmpi(I.slt, count, _c(0))  # (or an unsigned count past 2**63)
        # pos stays <= total + 1: a running sum past the total is already a failure.
        room = arith.subi(arith.addi(total, _c(1)), pos)
        nxt = arith.addi(pos, arith.minsi(arith.maxsi(count, _c(0)), room))
        stop = arith.minsi(nxt, total)
        src = for_(pos, stop, _c(1), [src],
                   lambda t, s: [tensor.insert(arith.index_cast(i64, i), s[0], [t])])[0]
        return [nxt, src, arith.ori(bad, negative)]

    src0 = fill(scalar(i64, 0), tensor.empty([total], i64))  # 0 where the counts fall short
    end, src, bad = for_(_c(0), n, _c(1), [_c(0), src0, scalar(i1, 0)], element)
    ctx.add_check(arith.ori(bad, arith.cmpi(I.ne, end, total)),
                  f"mo.repeat_interleave: repeats must be non-negative and sum to the result's "
                  f"dim {out_t.dims[axis]} along axis {axis}{where(ctx)}")
    et = element_type(out_t.element_type)
    maybe_empty = not (isinstance(x_t.dims[axis], int) and x_t.dims[axis] > 0)

    def body(_: ir.Value) -> ir.Value:
        loop = [linalg_index(d) for d in range(out_t.rank)]
        at = arith.index_cast(_index(), tensor.extract(src, [loop[axis]]))
        coords = [*loop[:axis], at, *loop[axis + 1:]]
        if not maybe_empty:
            return tensor.extract(x, coords)
        # Nothing to read from an empty axis (then the check has failed).
        return if_(arith.cmpi(I.sgt, n, _c(0)), lambda: [tensor.extract(x, coords)],
                   [scalar(et, 0)])[0]

    return [generic([], [ctx.empty(out_t)], [ir.AffineMap.get_identity(out_t.rank)],
                    [PARALLEL] * out_t.rank, body)[0]]
