"""mo.qmatmul for a few lhs rows (LLM decode): each weight block read once, decoded in registers.

With few lhs rows a quantized matmul is bound by reading the weight: decoding it into an f32
tile first (``quantization._qmatmul``'s path for many rows) moves 5-7x its bytes. Here every
weight row ``n`` is read once, block by block: a block's 32 codes become two ``vector<16xf32>``
of weights (the nibbles or bytes widened and scaled with vector ops), multiplied into two
vector accumulators per lhs row against the block's 32 lhs values; each accumulator pair is
summed at the end of the row. Nothing is materialized but the result.

The weight rows are shared out in chunks of ``CHUNK`` by an ``scf.forall`` (OpenMP's static
schedule gives each thread one contiguous range of chunks, which it streams); the last chunk
may be partial (any ``N``). Static rows (at most ``MAX_ROWS``) are one group, whose
accumulators (two ``zmm`` a row) stay in registers; a single row scales each block's dot
product once (``d * (q . x) + m * sum(x)``) instead of every weight. Symbolic rows (decode and
prefill in one graph) go in groups of ``GROUP``, then one at a time; each group re-reads the
weight row from L1.

The code is written with vector ops on tensors, which bufferization and the LLVM lowering take
as they are; no linalg op is left for the schedule. Weights are ``d * q`` (Q8_0, and Q4_0 with
``q - 8``) or ``d * q + m`` (Q4_1), computed with fused multiply-adds: not bit-identical to
gguf's dequantization, which rounds twice (the sums differ from it by rounding only).
"""

from __future__ import annotations

from collections.abc import Callable

from mlir import ir
from mlir.dialects import arith, math, scf, tensor, vector

from max.compiler.lowering.builders import index_constant, scalar
from max.compiler.lowering.quant_decode import Mixed
from max.compiler.lowering.shape_ops import mixed
from max.runtime.layouts import SPLIT_BLOCKS

# Encodings decoded here: (bytes per block, offset of the codes, f16 fields in the header).
# A block is its f16 header fields, then its codes: the table the split layout
# (runtime.layouts) rearranges by, so that reader and layout cannot disagree.
ENCODINGS: dict[str, tuple[int, int, int]] = {
    enc: (nbytes, 2 * fields, fields) for enc, (nbytes, fields) in SPLIT_BLOCKS.items()}
MAX_ROWS = 8  # static lhs rows taken by this path; more go to the tiled path (symbolic: all)
GROUP = 8  # lhs rows whose accumulators are live at once: 2 x 8 zmm of the 32
CHUNK = 16  # weight rows per forall iteration
LANES = 16  # f32 lanes of a 512-bit vector
# The attribute on the forall (for tests and the profile): this path ran.
ROWS_ATTR = "mo.qdecode_rows"  # the loop over a chunk's weight rows
LOOP_ATTR = "mo.qdecode"


def applies(enc: str, rows: object) -> bool:
    """Whether a qmatmul with ``rows`` lhs rows (an int if static) of ``enc`` takes this path.

    Symbolic rows always do: decode's one row at a time is the case that matters, and at 128
    rows (prefill) this path, bound by its multiply-adds as the tiled one is, measured about
    as fast; the tiled path with symbolic rows was 5x slower where they were not a multiple of
    32, and choosing between them at run time (an scf.if on the rows, measured from 32 and
    from 64 rows) won for some weight shapes and lost for others.
    """
    return enc in ENCODINGS and (not isinstance(rows, int) or 1 <= rows <= MAX_ROWS)


def _sum(v: ir.Value) -> ir.Value:
    """The sum of a vector's lanes, in any order (a tree of shuffles and adds)."""
    return vector.reduction(ir.F32Type.get(), ir.Attribute.parse("#vector.kind<add>"), v,
                            fastmath=ir.Attribute.parse("#arith.fastmath<reassoc>"))


def _splat(t: ir.VectorType, v: ir.Value) -> ir.Value:
    return vector.broadcast(t, v)


def _const_vec(t: ir.VectorType, v: int | float) -> ir.Value:
    et = t.element_type
    attr = ir.FloatAttr.get(et, v) if isinstance(v, float) else ir.IntegerAttr.get(et, v)
    return arith.constant(t, ir.DenseElementsAttr.get_splat(t, attr))


def _read(src: ir.Value, row: ir.Value, col: ir.Value, vt: ir.VectorType,
          in_bounds: bool = True) -> ir.Value:
    """``src[row, col : col + len]`` as a vector (``in_bounds``: the caller reads inside the
    row; otherwise lanes past the row's end read 0)."""
    et = ir.RankedTensorType(src.type).element_type
    pad = arith.constant(et, ir.FloatAttr.get(et, 0.0) if isinstance(et, ir.FloatType)
                         else ir.IntegerAttr.get(et, 0))
    perm = ir.AffineMapAttr.get(ir.AffineMap.get_minor_identity(2, 1))
    return vector.transfer_read(vt, src, [row, col], perm, pad, [in_bounds])


class Layout:
    """Where a weight row's blocks keep their codes and f16 header fields.

    ``blocked``: GGUF's own order, block after block (header, then codes). ``split`` (the
    load-time layout ``runtime.layouts`` names ``ENC_split``): the row's codes of all blocks
    first, then each header field of all blocks (every scale, then every min), so that a
    block's codes start on a 16-byte boundary and 16 blocks' scales are one load.
    """

    def __init__(self, enc: str, nblocks: int, split: bool) -> None:
        self.enc, self.nblocks, self.split = enc, nblocks, split
        self.nbytes, self.code_offset, self.fields = ENCODINGS[enc]
        self.code_bytes = self.nbytes - self.code_offset

    def codes(self, b: ir.Value) -> ir.Value:
        """The byte offset in the row of block ``b``'s codes."""
        if self.split:
            return arith.muli(b, index_constant(self.code_bytes))
        return arith.addi(arith.muli(b, index_constant(self.nbytes)),
                          index_constant(self.code_offset))

    def field(self, i: int, b: ir.Value) -> ir.Value:
        """The byte offset in the row of block ``b``'s f16 header field ``i``."""
        if self.split:
            start = self.nblocks * self.code_bytes + 2 * i * self.nblocks
            return arith.addi(index_constant(start), arith.muli(b, index_constant(2)))
        return arith.addi(arith.muli(b, index_constant(self.nbytes)), index_constant(2 * i))


def _header(lay: Layout, w: ir.Value, n: ir.Value, b: ir.Value) -> list[ir.Value]:
    """Block ``b``'s f16 fields (scale, and min for Q4_1) as f32 scalars."""
    i8, f16, f32 = (ir.IntegerType.get_signless(8), ir.F16Type.get(), ir.F32Type.get())
    if lay.split:  # the fields lie apart: one 2-byte read each
        return [arith.extf(f32, vector.extract(vector.bitcast(
            ir.VectorType.get([1], f16), _read(w, n, lay.field(i, b), ir.VectorType.get([2], i8))),
            [], [0])) for i in range(lay.fields)]
    raw = _read(w, n, lay.field(0, b), ir.VectorType.get([2 * lay.fields], i8))
    halves = vector.bitcast(ir.VectorType.get([lay.fields], f16), raw)
    wide = arith.extf(ir.VectorType.get([lay.fields], f32), halves)
    return [vector.extract(wide, [], [i]) for i in range(lay.fields)]


def _codes(lay: Layout, w: ir.Value, n: ir.Value, b: ir.Value) -> tuple[ir.Value, ir.Value]:
    """Block ``b``'s 32 codes as two ``vector<16xf32>``: elements 0..15 and 16..31."""
    i8 = ir.IntegerType.get_signless(8)
    v8 = ir.VectorType.get([LANES], i8)
    vf = ir.VectorType.get([LANES], ir.F32Type.get())
    at = lay.codes(b)
    if lay.enc == "q8_0":
        lo = _read(w, n, at, v8)
        hi = _read(w, n, arith.addi(at, index_constant(LANES)), v8)
        return arith.sitofp(vf, lo), arith.sitofp(vf, hi)
    # Widened first (one vpmovzxbd from memory), then split on 32-bit lanes: byte-wide
    # masks and shifts cost a second widening.
    v32 = ir.VectorType.get([LANES], ir.IntegerType.get_signless(32))
    packed = arith.extui(v32, _read(w, n, at, v8))
    lo = arith.andi(packed, _const_vec(v32, 15))
    hi = arith.shrui(packed, _const_vec(v32, 4))
    # (0..15: signed conversion is exact; mo-nibble-lookup makes both a vpermps on AVX-512)
    return arith.sitofp(vf, lo), arith.sitofp(vf, hi)


def _weights(lay: Layout, w: ir.Value, n: ir.Value, b: ir.Value) -> tuple[ir.Value, ir.Value]:
    """Block ``b``'s 32 weights (two ``vector<16xf32>``), decoded from row ``n`` of ``w``."""
    vf = ir.VectorType.get([LANES], ir.F32Type.get())
    head = _header(lay, w, n, b)
    lo, hi = _codes(lay, w, n, b)
    d = _splat(vf, head[0])
    if lay.enc == "q8_0":
        return arith.mulf(lo, d), arith.mulf(hi, d)
    if lay.enc == "q4_0":  # d * (q - 8) = q * d + (-8 d)
        off = _splat(vf, arith.mulf(head[0], scalar(ir.F32Type.get(), -8.0)))
    else:
        off = _splat(vf, head[1])
    return vector.fma(lo, d, off), vector.fma(hi, d, off)


def column_sums(a: ir.Value, rows: Mixed, blocks: int, width: int) -> ir.Value:
    """``[rows, blocks]`` f32: the sums of each lhs row over each block of ``width`` columns
    (a multiple of ``LANES``)."""
    f32 = ir.F32Type.get()
    vf = ir.VectorType.get([LANES], f32)
    c0, c1 = index_constant(0), index_constant(1)
    outer = scf.ForOp(c0, _index(rows), c1, [tensor.EmptyOp([rows, blocks], f32).result])
    with ir.InsertionPoint(outer.body):
        m = outer.induction_variable
        loop = scf.ForOp(c0, index_constant(blocks), c1, [outer.inner_iter_args[0]])
        with ir.InsertionPoint(loop.body):
            b = loop.induction_variable
            col = arith.muli(b, index_constant(width))
            acc = _read(a, m, col, vf)
            for off in range(LANES, width, LANES):
                acc = arith.addf(acc, _read(a, m, arith.addi(col, index_constant(off)), vf))
            scf.YieldOp([tensor.insert(_sum(acc), loop.inner_iter_args[0], [m, b])])
        scf.YieldOp([loop.results[0]])
    return outer.results[0]


def _index(v: Mixed) -> ir.Value:
    return index_constant(v) if isinstance(v, int) else v


def _one_row_dot(lay: Layout, a: ir.Value, w: ir.Value, n: ir.Value, sums: ir.Value,
                 row: ir.Value) -> ir.Value:
    """``a[row, :] . dequant(w[n, :])`` with the scale applied once per block, not per weight.

    Per block ``d * (q . x) + m * sum(x)`` (``m = -8 d`` for Q4_0, none for Q8_0): three
    vector operations on the codes instead of four, the ``m`` terms in scalar code.
    """
    if lay.split:
        return _one_row_dot_split(lay, a, w, n, sums, row)
    f32 = ir.F32Type.get()
    vf = ir.VectorType.get([LANES], f32)
    enc = lay.enc
    inits = [_const_vec(vf, 0.0)] + ([] if enc == "q8_0" else [scalar(f32, 0.0)])
    loop = scf.ForOp(index_constant(0), index_constant(lay.nblocks), index_constant(1), inits)
    with ir.InsertionPoint(loop.body):
        b = loop.induction_variable
        head = _header(lay, w, n, b)
        t = _code_dot(lay, a, w, n, row, b)
        acc = vector.fma(t, _splat(vf, head[0]), loop.inner_iter_args[0])
        out = [acc]
        if enc != "q8_0":  # q4_0: sum of d * sum(x), times -8 at the end
            m = head[1] if enc == "q4_1" else head[0]
            out.append(math.fma(m, tensor.extract(sums, [row, b]), loop.inner_iter_args[1]))
        scf.YieldOp(out)
    dot = _sum(loop.results[0])
    if enc == "q8_0":
        return dot
    if enc == "q4_0":
        return math.fma(scalar(f32, -8.0), loop.results[1], dot)
    return arith.addf(dot, loop.results[1])


def _code_dot(lay: Layout, a: ir.Value, w: ir.Value, n: ir.Value, row: ir.Value,
              b: ir.Value) -> ir.Value:
    """``codes(b) * a[row, block b]`` as 16 lane sums (a ``vector<16xf32>``)."""
    vf = ir.VectorType.get([LANES], ir.F32Type.get())
    lo, hi = _codes(lay, w, n, b)
    col = arith.muli(b, index_constant(2 * LANES))
    t = arith.mulf(lo, _read(a, row, col, vf))
    return vector.fma(hi, _read(a, row, arith.addi(col, index_constant(LANES)), vf), t)


def _one_row_dot_split(lay: Layout, a: ir.Value, w: ir.Value, n: ir.Value, sums: ir.Value,
                       row: ir.Value) -> ir.Value:
    """:func:`_one_row_dot` over a ``split`` row, ``LANES`` blocks at a time.

    The header fields of ``LANES`` blocks are one vector each: their conversion to f32 and
    the ``m * sum(x)`` terms (a vector FMA with the block sums) cost a sixteenth of a block;
    each block's scale is a lane of that vector. Two accumulators alternate between blocks,
    so that the chain of FMAs does not wait on itself. The last ``nblocks % LANES`` blocks
    read their fields with lanes past the row's end masked (they are 0).
    """
    f32 = ir.F32Type.get()
    vf = ir.VectorType.get([LANES], f32)
    zero = _const_vec(vf, 0.0)

    def chunk(first: ir.Value, count: int, accs: list[ir.Value]) -> list[ir.Value]:
        whole = count == LANES
        fields = [_fields(lay, w, n, i, first, whole) for i in range(lay.fields)]
        s = _read(sums, row, first, vf, whole)
        out = list(accs)
        if lay.enc != "q8_0":  # Q4_0: the scales, times -8 at the end
            out[2] = vector.fma(fields[-1], s, out[2])
        for j in range(count):
            b = arith.addi(first, index_constant(j))
            d = _splat(vf, vector.extract(fields[0], [], [j]))
            out[j % 2] = vector.fma(_code_dot(lay, a, w, n, row, b), d, out[j % 2])
        return out

    whole = lay.nblocks // LANES
    accs = [zero, zero, zero]
    if whole:
        loop = scf.ForOp(index_constant(0), index_constant(whole * LANES),
                         index_constant(LANES), accs)
        with ir.InsertionPoint(loop.body):
            scf.YieldOp(chunk(loop.induction_variable, LANES, list(loop.inner_iter_args)))
        accs = list(loop.results)
    if lay.nblocks % LANES:
        accs = chunk(index_constant(whole * LANES), lay.nblocks % LANES, accs)
    dot = _sum(arith.addf(accs[0], accs[1]))
    if lay.enc == "q8_0":
        return dot
    mins = _sum(accs[2])
    if lay.enc == "q4_0":
        return math.fma(scalar(f32, -8.0), mins, dot)
    return arith.addf(dot, mins)


def _fields(lay: Layout, w: ir.Value, n: ir.Value, i: int, first: ir.Value,
            in_bounds: bool) -> ir.Value:
    """Header field ``i`` of blocks ``first .. first + LANES`` of a split row, as f32."""
    i8, f16 = ir.IntegerType.get_signless(8), ir.F16Type.get()
    raw = _read(w, n, lay.field(i, first), ir.VectorType.get([2 * LANES], i8), in_bounds)
    halves = vector.bitcast(ir.VectorType.get([LANES], f16), raw)
    return arith.extf(ir.VectorType.get([LANES], ir.F32Type.get()), halves)


def _row_dots(lay: Layout, a: ir.Value, w: ir.Value, n: ir.Value, rows: list[ir.Value]
              ) -> list[ir.Value]:
    """``a[m, :] . dequant(w[n, :])`` for ``m`` in ``rows``, as f32 scalars."""
    f32 = ir.F32Type.get()
    vf = ir.VectorType.get([LANES], f32)
    zero = _const_vec(vf, 0.0)
    loop = scf.ForOp(index_constant(0), index_constant(lay.nblocks), index_constant(1),
                     [zero] * (2 * len(rows)))
    with ir.InsertionPoint(loop.body):
        b = loop.induction_variable
        w_lo, w_hi = _weights(lay, w, n, b)
        col = arith.muli(b, index_constant(2 * LANES))
        col_hi = arith.addi(col, index_constant(LANES))
        accs = list(loop.inner_iter_args)
        out = []
        for i, mi in enumerate(rows):
            out.append(vector.fma(w_lo, _read(a, mi, col, vf), accs[2 * i]))
            out.append(vector.fma(w_hi, _read(a, mi, col_hi, vf), accs[2 * i + 1]))
        scf.YieldOp(out)
    res = list(loop.results)
    return [_sum(arith.addf(res[2 * i], res[2 * i + 1]))
            for i in range(len(rows))]


def _over_rows(size: ir.Value, n0: ir.Value, acc: ir.Value,
               body: Callable[[ir.Value, ir.Value, ir.Value], ir.Value]) -> ir.Value:
    """``acc`` threaded through ``body(weight row, its column in acc, acc)`` for the chunk's
    weight rows ``n0 .. n0 + size``."""
    loop = scf.ForOp(index_constant(0), size, index_constant(1), [acc])
    loop.operation.attributes[ROWS_ATTR] = ir.UnitAttr.get()  # prefetch_weights finds it
    with ir.InsertionPoint(loop.body):
        r = loop.induction_variable
        scf.YieldOp([body(arith.addi(n0, r), r, loop.inner_iter_args[0])])
    return loop.results[0]


def qmatmul_rows(enc: str, a: ir.Value, w: ir.Value, m: Mixed, n: int, k: int,
                 split: bool = False) -> ir.Value:
    """``a @ dequant(w).T``: ``a`` ``[m, k]`` f32, ``w`` ``[n, k / 32 * bytes]`` i8 GGUF
    blocks -> ``[m, n]`` f32.

    ``m``: static (at most ``MAX_ROWS``: groups of ``GROUP`` rows, one row scaled per block),
    or a value (groups of ``GROUP`` rows, then the rest one at a time; each group or row goes
    over the chunk's weight rows, so that its lhs rows stay in L1: over all the lhs rows per
    weight row, 128 rows of 576 streamed from L2, 1.4x slower).
    """
    f32 = ir.F32Type.get()
    nblocks = k // 32
    lay = Layout(enc, nblocks, split)
    nchunks = -(-n // CHUNK)
    static = isinstance(m, int)
    groups = [range(g, min(g + GROUP, m)) for g in range(0, m, GROUP)] if static else []
    sums = column_sums(a, m, nblocks, 2 * LANES) if not static or m == 1 else None
    out = tensor.EmptyOp([m, n], f32).result
    forall = scf.ForallOp([0], [nchunks], [1], [out])
    forall.operation.attributes[LOOP_ATTR] = ir.UnitAttr.get()
    with ir.InsertionPoint(forall.body):
        c = forall.induction_variables[0]
        n0 = arith.muli(c, index_constant(CHUNK))
        size = arith.minsi(index_constant(CHUNK), arith.subi(index_constant(n), n0))
        part = tensor.EmptyOp([m, size], f32).result

        def one_row(i: ir.Value) -> Callable[[ir.Value, ir.Value, ir.Value], ir.Value]:
            def body(row: ir.Value, r: ir.Value, acc: ir.Value) -> ir.Value:
                return tensor.insert(_one_row_dot(lay, a, w, row, sums, i), acc,
                                     [i, r])
            return body

        def group(rows: list[ir.Value]) -> Callable[[ir.Value, ir.Value, ir.Value], ir.Value]:
            def body(row: ir.Value, r: ir.Value, acc: ir.Value) -> ir.Value:
                for i, dot in zip(rows, _row_dots(lay, a, w, row, rows)):
                    acc = tensor.insert(dot, acc, [i, r])
                return acc
            return body

        if not static:  # groups of GROUP rows, then the rest one by one
            whole = arith.muli(arith.divui(m, index_constant(GROUP)), index_constant(GROUP))
            by_group = scf.ForOp(index_constant(0), whole, index_constant(GROUP), [part])
            with ir.InsertionPoint(by_group.body):
                g0 = by_group.induction_variable
                rows = [arith.addi(g0, index_constant(j)) for j in range(GROUP)]
                scf.YieldOp([_over_rows(size, n0, by_group.inner_iter_args[0], group(rows))])
            each = scf.ForOp(whole, m, index_constant(1), [by_group.results[0]])
            with ir.InsertionPoint(each.body):
                i = each.induction_variable
                scf.YieldOp([_over_rows(size, n0, each.inner_iter_args[0], one_row(i))])
            part = each.results[0]
        elif sums is not None:
            part = _over_rows(size, n0, part, one_row(index_constant(0)))
        else:
            def all_groups(row: ir.Value, r: ir.Value, acc: ir.Value) -> ir.Value:
                for g in groups:
                    acc = group([index_constant(j) for j in g])(row, r, acc)
                return acc
            part = _over_rows(size, n0, part, all_groups)
        with ir.InsertionPoint(forall.terminator().region.blocks[0]):
            (do, so), (ds, ss), (dt, st) = mixed([0, n0]), mixed([m, size]), mixed([1, 1])
            tensor.parallel_insert_slice(part, forall.inner_iter_args[0],
                                         do, ds, dt, so, ss, st)
    return forall.results[0]
