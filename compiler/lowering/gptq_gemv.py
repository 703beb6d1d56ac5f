"""mo.gptq_qmatmul for a few static lhs rows (LLM decode): the packed weight streamed once.

The tiled path (``gptq.py``) decodes ``[K, 64]`` f32 tiles of the weight and multiplies them:
with one lhs row it moves 8 bytes of f32 per half byte of code, and the decode is most of the
work (1 x 4096 @ 4096 x 4096: 3.9 ms, against 0.55 for the same weight as GGUF Q4_0). Here
the codes are decoded in registers, column-wise as they are packed: a row of 4-bit words
``uint32 [K/8, N]`` holds 8 weight rows of N columns, so 64 bytes are the words of 16
columns, one ``vector<16xi32>`` (little-endian, as the bytes lie), and weight row ``8 i + j``
of those columns is ``(w >> 4 j) & 15`` in every lane. Each lhs row keeps two accumulators per
32 columns; per group of ``group_size`` weight rows the code products are summed unscaled and
the group's scales applied once, the zero point through the group's lhs sums:
``sum_k x_k s (q_k - 8) = s (sum_k x_k q_k - 8 sum_k x_k)``.

Threads share the column chunks (an ``scf.forall``, OpenMP's static schedule). Written as vector
ops on tensors, as ``quant_gemv``: no linalg op is left for the schedule. Taken for static
rows up to :data:`MAX_ROWS` or symbolic rows, N a multiple of :data:`COLS` and groups a
multiple of 16. Act order (``perm``) walks the codes in their own order too, each code's
weight row found through the inverse permutation (:func:`_chunk_rows_perm`).
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, scf, tensor, vector

from max.compiler.lowering.builders import index_constant
from max.compiler.lowering.quant_decode import Mixed
from max.compiler.lowering.quant_gemv import _const_vec, _read, column_sums
from max.compiler.lowering.shape_ops import mixed

MAX_ROWS = 8  # lhs rows whose accumulators (2 zmm each) stay in registers
LANES = 16  # f32 lanes of a 512-bit vector
COLS = 2 * LANES  # columns per chunk: two accumulators per lhs row
# Lhs rows per pass over a chunk's codes: 4 rows' accumulators and group sums are 16 zmm;
# 8 rows in one pass spilled (1 thread, 1 x 4096 @ 4096 x 4096 at 8 rows: 3.58 ms).
PASS_ROWS = 4
LOOP_ATTR = "mo.gptq_gemv"  # on the forall (for tests and the profile): this path ran


def applies(rows: object, n: int, g: int) -> bool:
    """Whether a GPTQ qmatmul with ``rows`` lhs rows (an int if static), ``n`` columns and
    groups of ``g`` takes this path. Symbolic rows do (decode and prefill in one graph: at
    many rows it stays bound by its multiply-adds, as the tiled path is)."""
    static_ok = not isinstance(rows, int) or 1 <= rows <= MAX_ROWS
    return static_ok and n % COLS == 0 and g % LANES == 0


class _Words:
    """A chunk's word rows: the 4-bit codes of its ``COLS`` columns from ``n0``, 16 columns a
    ``vector<16xi32>`` (64 bytes, little-endian as the words lie), and weight row ``8 i + j``
    of them as f32: ``(w >> 4 j) & 15``."""

    def __init__(self, n0: ir.Value) -> None:
        i32 = ir.IntegerType.get_signless(32)
        self.vf = ir.VectorType.get([LANES], ir.F32Type.get())
        self.zero = _const_vec(self.vf, 0.0)
        self.cols = [arith.addi(n0, index_constant(v * LANES)) for v in range(2)]
        self.v32 = ir.VectorType.get([LANES], i32)
        self.v8 = ir.VectorType.get([4 * LANES], ir.IntegerType.get_signless(8))
        self.mask = _const_vec(self.v32, 15)
        self.shifts = [_const_vec(self.v32, 4 * j) for j in range(1, 8)]

    def load(self, codes: ir.Value, row: ir.Value) -> list[ir.Value]:
        """Word row ``row`` of the chunk's columns (two vectors)."""
        return [vector.bitcast(self.v32, _read(codes, row, arith.muli(c, index_constant(4)),
                                               self.v8)) for c in self.cols]

    def row(self, table: ir.Value, row: ir.Value) -> list[ir.Value]:
        """Row ``row`` of an f32 ``[*, N]`` table (the scales) at the chunk's columns."""
        return [_read(table, row, c, self.vf) for c in self.cols]

    def minus_eight(self, sums: ir.Value, r: ir.Value, grp: ir.Value) -> ir.Value:
        """``-8 * sums[r, grp]`` in every lane: the zero point's part of a group."""
        f32 = ir.F32Type.get()
        return vector.broadcast(self.vf, arith.mulf(
            arith.constant(f32, ir.FloatAttr.get(f32, -8.0)), tensor.extract(sums, [r, grp])))

    def codes(self, packed: list[ir.Value], j: int) -> list[ir.Value]:
        """Code ``j`` of each loaded word, as f32 (0..15: exact)."""
        return [arith.sitofp(self.vf, arith.andi(
            p if j == 0 else arith.shrui(p, self.shifts[j - 1]), self.mask)) for p in packed]


def _chunk_rows(a: ir.Value, codes: ir.Value, scales: ir.Value, sums: ir.Value,
                rows: list[ir.Value], n0: ir.Value, kg: int, words: int) -> list[ir.Value]:
    """The ``COLS`` columns from ``n0`` of the product for lhs ``rows``: two vectors a row
    (columns ``n0 .. n0 + 16``, then the next 16)."""
    w = _Words(n0)
    vf, zero, m = w.vf, w.zero, len(rows)
    groups = scf.ForOp(index_constant(0), index_constant(kg), index_constant(1), [zero] * (2 * m))
    with ir.InsertionPoint(groups.body):
        grp = groups.induction_variable
        word0 = arith.muli(grp, index_constant(words))
        inner = scf.ForOp(index_constant(0), index_constant(words), index_constant(1),
                          [zero] * (2 * m))
        with ir.InsertionPoint(inner.body):
            row = arith.addi(word0, inner.induction_variable)
            packed = w.load(codes, row)
            accs = list(inner.inner_iter_args)
            krow = arith.muli(row, index_constant(8))
            for j in range(8):
                q = w.codes(packed, j)
                col = arith.addi(krow, index_constant(j))
                for i, r in enumerate(rows):
                    x = vector.broadcast(vf, tensor.extract(a, [r, col]))
                    for v in range(2):
                        accs[2 * i + v] = vector.fma(q[v], x, accs[2 * i + v])
            scf.YieldOp(accs)
        done = list(groups.inner_iter_args)
        s = w.row(scales, grp)
        for i, r in enumerate(rows):
            # s (sum x q - 8 sum x): the group's part of the product
            eight = w.minus_eight(sums, r, grp)
            for v in range(2):
                dot = arith.addf(inner.results[2 * i + v], eight)
                done[2 * i + v] = vector.fma(s[v], dot, done[2 * i + v])
        scf.YieldOp(done)
    return list(groups.results)


def inverse(perm: ir.Value, k: int) -> tuple[ir.Value, ir.Value]:
    """``(inv, missing)``: ``inv[perm[p]] = p`` (index ``[k]``; ``perm`` values read unsigned
    and clamped to ``k - 1``) and an i1 that is true where some position is nobody's
    (``perm`` is then no permutation)."""
    index = ir.IndexType.get()
    c0, c1, top = index_constant(0), index_constant(1), index_constant(k - 1)
    unset = index_constant(k)
    inv = tensor.SplatOp(ir.RankedTensorType.get([k], index), unset, []).result
    loop = scf.ForOp(c0, index_constant(k), c1, [inv])
    with ir.InsertionPoint(loop.body):
        p = loop.induction_variable
        q = arith.minui(arith.index_castui(index, tensor.extract(perm, [p])), top)
        scf.YieldOp([tensor.insert(p, loop.inner_iter_args[0], [q])])
    inv = loop.results[0]
    i1 = ir.IntegerType.get_signless(1)
    check = scf.ForOp(c0, index_constant(k), c1, [arith.constant(i1, 0)])
    with ir.InsertionPoint(check.body):
        hole = arith.cmpi(arith.CmpIPredicate.eq,
                          tensor.extract(inv, [check.induction_variable]), unset)
        scf.YieldOp([arith.ori(check.inner_iter_args[0], hole)])
    return inv, check.results[0]


def _chunk_rows_perm(a: ir.Value, codes: ir.Value, scales: ir.Value, sums: ir.Value,
                     inv: ir.Value, rows: list[ir.Value], n0: ir.Value, k: int, kg: int,
                     g: int) -> list[ir.Value]:
    """:func:`_chunk_rows` with act order: ``a`` holds ``lhs[..., perm]``, and weight row
    ``p`` is ``scales[p // g] * (code[perm[p]] - 8)``. Walked in the codes' order ``q``:
    ``p = inv[q]``, each code times ``a[inv[q]] * scales[inv[q] // g]`` (a scale row per
    code, from L1); the zero point once a chunk, ``-8 sum_grp scales[grp] * sum(a over
    grp)`` (positions ``p`` of a group are consecutive)."""
    w = _Words(n0)
    vf, zero, m = w.vf, w.zero, len(rows)
    loop = scf.ForOp(index_constant(0), index_constant(k // 8), index_constant(1),
                     [zero] * (2 * m))
    with ir.InsertionPoint(loop.body):
        row = loop.induction_variable
        packed = w.load(codes, row)
        accs = list(loop.inner_iter_args)
        krow = arith.muli(row, index_constant(8))
        for j in range(8):
            q = w.codes(packed, j)
            pos = tensor.extract(inv, [arith.addi(krow, index_constant(j))])
            srow = arith.divui(pos, index_constant(g))
            s = w.row(scales, srow)
            for i, r in enumerate(rows):
                x = vector.broadcast(vf, tensor.extract(a, [r, pos]))
                for v in range(2):
                    accs[2 * i + v] = vector.fma(q[v], arith.mulf(x, s[v]), accs[2 * i + v])
        scf.YieldOp(accs)
    groups = scf.ForOp(index_constant(0), index_constant(kg), index_constant(1),
                       list(loop.results))
    with ir.InsertionPoint(groups.body):
        grp = groups.induction_variable
        s = w.row(scales, grp)
        out = list(groups.inner_iter_args)
        for i, r in enumerate(rows):
            eight = w.minus_eight(sums, r, grp)
            for v in range(2):
                out[2 * i + v] = vector.fma(s[v], eight, out[2 * i + v])
        scf.YieldOp(out)
    return list(groups.results)


def _write(part: ir.Value, rows: list[ir.Value], results: list[ir.Value]) -> ir.Value:
    """The rows' two vectors each into the chunk's ``[m, COLS]`` result."""
    perm = ir.AffineMapAttr.get(ir.AffineMap.get_minor_identity(2, 1))
    for i, r in enumerate(rows):
        for v in range(2):
            part = vector.transfer_write(part.type, results[2 * i + v], part,
                                         [r, index_constant(v * LANES)], perm, [True])
    return part


def qmatmul_rows(a: ir.Value, codes: ir.Value, scales: ir.Value, m: Mixed, n: int, k: int,
                 g: int, inv: ir.Value | None = None) -> ir.Value:
    """``a @ W``: ``a`` ``[m, k]`` f32; ``codes`` the packed words' bytes ``[k / 8, 4 n]`` i8;
    ``scales`` ``[k / g, n]`` f32 -> ``[m, n]`` f32. ``m`` static, or a value (rows in passes
    of :data:`PASS_ROWS`, then the rest one at a time). ``inv``: act order's inverse
    permutation (:func:`inverse`), weight row ``p`` then being code row ``perm[p]``."""
    f32 = ir.F32Type.get()
    kg, words = k // g, g // 8
    sums = column_sums(a, m, kg, g)
    out = tensor.EmptyOp([m, n], f32).result
    forall = scf.ForallOp([0], [n // COLS], [1], [out])
    forall.operation.attributes[LOOP_ATTR] = ir.UnitAttr.get()
    with ir.InsertionPoint(forall.body):
        n0 = arith.muli(forall.induction_variables[0], index_constant(COLS))
        part = tensor.EmptyOp([m, COLS], f32).result

        def rows_pass(part: ir.Value, rows: list[ir.Value]) -> ir.Value:
            if inv is not None:
                return _write(part, rows, _chunk_rows_perm(a, codes, scales, sums, inv, rows,
                                                           n0, k, kg, g))
            return _write(part, rows, _chunk_rows(a, codes, scales, sums, rows, n0, kg, words))

        if isinstance(m, int):
            for first in range(0, m, PASS_ROWS):
                part = rows_pass(part, [index_constant(r)
                                        for r in range(first, min(first + PASS_ROWS, m))])
        else:
            whole = arith.muli(arith.divui(m, index_constant(PASS_ROWS)),
                               index_constant(PASS_ROWS))
            passes = scf.ForOp(index_constant(0), whole, index_constant(PASS_ROWS), [part])
            with ir.InsertionPoint(passes.body):
                r0 = passes.induction_variable
                scf.YieldOp([rows_pass(passes.inner_iter_args[0],
                                       [arith.addi(r0, index_constant(j))
                                        for j in range(PASS_ROWS)])])
            rest = scf.ForOp(whole, m, index_constant(1), [passes.results[0]])
            with ir.InsertionPoint(rest.body):
                scf.YieldOp([rows_pass(rest.inner_iter_args[0], [rest.induction_variable])])
            part = rest.results[0]
        with ir.InsertionPoint(forall.terminator().region.blocks[0]):
            (do, so), (ds, ss), (dt, st) = mixed([0, n0]), mixed([m, COLS]), mixed([1, 1])
            tensor.parallel_insert_slice(part, forall.inner_iter_args[0],
                                         do, ds, dt, so, ss, st)
    return forall.results[0]


__all__ = ["COLS", "LOOP_ATTR", "MAX_ROWS", "applies", "inverse", "qmatmul_rows"]
