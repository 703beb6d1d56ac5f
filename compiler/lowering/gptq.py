"""mo.gptq_dequantize and mo.gptq_qmatmul (and ``_perm`` forms): MAX's packed GPTQ weights.

The packed ``[K/2 + 2K/group, N]`` ui8 operand is read as its two arrays (see
``dialects/mo/opdefs/gptq.py``): the bytes of ``uint32 [K/8, N]`` codes, viewed
``[K/group, group/8, N, 4]``, and the float16 scales, viewed ``[K/group, N, 2]``. The scales are
converted to f32 once (``[K/group, N]``, 1/64 of the weight's elements at group 128, before a
column tile slices them, so that they are not fused back into the element loop). Then, as the
GGUF rules (``quantization.py``), an ``scf.for`` tagged ``TILE_LOOP`` walks tiles of ``TN``
weight columns: each tile is decoded (``[K, TN]`` f32, 1 MiB at K = 4096) by one elementwise
generic over ``(group, word, byte, nibble, column)`` whose byte read is a projected map, and
``qmatmul`` multiplies ``lhs @ tile`` into its columns of the result; the whole dequantized
weight never exists. Every read is inside the packed operand: its shape fixes K and N.

``gptq_dequantize_perm`` reads each code at row ``perm[p]`` with ``tensor.extract`` (plain
loops, not vectorized). ``gptq_qmatmul_perm`` walks the codes in their own order instead,
through the inverse permutation (``_unpermuted``; the decode path ``gptq_gemv`` likewise).
``perm`` values are read unsigned and clamped to ``K - 1``, and runtime checks report any
outside ``[0, K)`` and, for qmatmul, a ``perm`` that is no permutation.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, linalg, tensor

from max.compiler.lowering import gptq_gemv
from max.compiler.lowering.builders import (
    PARALLEL,
    dims_map,
    fill,
    generic,
    linalg_index,
    reassociation,
    scalar,
    transposed,
)
from max.compiler.lowering.context import LoweringContext
from max.compiler.lowering.gather import any_oob, where
from max.compiler.lowering.quantization import TileLoop, _as_rows, _from_rows, _tile_n
from max.compiler.lowering.registry import lowering
from max.compiler.lowering.shape_ops import extract_slice


def _I8() -> ir.Type:
    return ir.IntegerType.get_signless(8)


def _I32() -> ir.Type:
    return ir.IntegerType.get_signless(32)


class _Packed:
    """The views of one packed operand and its constants (K, N, group size)."""

    def __init__(self, ctx: LoweringContext, w: ir.Value, rows: int, n: int):
        g = ctx.int_attr("group_size")
        if g <= 0 or g % 8 or rows % (g // 2 + 2):
            raise ctx.error(f"packed rows {rows} are not whole groups of group_size {g}")
        self.g, self.n = g, n
        self.k = rows // (g // 2 + 2) * g
        self.kg = self.k // g
        i8 = _I8()
        flat = tensor.collapse_shape(ir.RankedTensorType.get([rows * n], i8), w, [[0, 1]])
        nq = self.k // 2 * n  # bytes of codes
        codes = extract_slice(ir.RankedTensorType.get([nq], i8), flat, [0], [nq], [1])
        self.codes4 = _expand(codes, [self.kg, g // 8, n, 4])
        self.codes2 = _expand(codes, [self.k // 8, n * 4])
        ns = 2 * self.kg * n
        sbytes = _expand(extract_slice(ir.RankedTensorType.get([ns], i8), flat, [nq], [ns],
                                       [1]), [self.kg, n, 2])
        self.scales = _scales(sbytes, self.kg, n)

    def loops(self, tn: int) -> list[int]:
        """(group, word in group, byte in word, nibble in byte, column) sizes of a tile."""
        return [self.kg, self.g // 8, 4, 2, tn]


def _expand(x: ir.Value, shape: list[int]) -> ir.Value:
    """A 1-D tensor -> ``shape`` (row-major)."""
    et = ir.RankedTensorType(x.type).element_type
    out_t = ir.RankedTensorType.get(shape, et)
    return tensor.ExpandShapeOp(out_t, x, reassociation([list(range(len(shape)))]), [],
                                shape).result


def _scales(sbytes: ir.Value, kg: int, n: int) -> ir.Value:
    """``[kg, n, 2]`` little-endian float16 bytes -> ``[kg, n]`` f32 (exact)."""
    i8 = _I8()
    lo, hi = (extract_slice(ir.RankedTensorType.get([kg, n], i8), sbytes, [0, 0, b],
                            [kg, n, 1], [1, 1, 1]) for b in (0, 1))
    i16 = ir.IntegerType.get_signless(16)

    def body(lo: ir.Value, hi: ir.Value, _: ir.Value) -> ir.Value:
        bits = arith.ori(arith.extui(i16, lo), arith.shli(arith.extui(i16, hi), scalar(i16, 8)))
        return arith.extf(ir.F32Type.get(), arith.bitcast(ir.F16Type.get(), bits))

    ident = ir.AffineMap.get_identity(2)
    return generic([lo, hi], [tensor.empty([kg, n], ir.F32Type.get())], [ident] * 3,
                   [PARALLEL] * 2, body)[0]


def _value(byte: ir.Value, half: ir.Value, scale: ir.Value) -> ir.Value:
    """``scale * (nibble - 8)``, the nibble ``half`` (0 low, 1 high) of ``byte`` (i8)."""
    i32 = _I32()
    shift = arith.muli(arith.index_castui(i32, half), scalar(i32, 4))
    q = arith.andi(arith.shrui(arith.extui(i32, byte), shift), scalar(i32, 15))
    return arith.mulf(scale, arith.sitofp(ir.F32Type.get(), arith.subi(q, scalar(i32, 8))))


def _decode(p: _Packed, n0: ir.Value, tn: int, perm: ir.Value | None,
            srow: ir.Value | None = None) -> ir.Value:
    """Columns ``[n0, n0 + tn)`` of the weight: ``[K, tn]`` f32 (row ``p`` from code row
    ``perm[p]``, where given). ``srow``: the codes in their own order, code row ``q`` scaled
    by scale row ``srow[q]`` (expanded to the decode loops) instead of its group's."""
    f32 = ir.F32Type.get()
    loops = p.loops(tn)
    scales = extract_slice(ir.RankedTensorType.get([p.kg, tn], f32), p.scales, [0, n0],
                           [p.kg, tn], [1, 1])
    out = tensor.empty(loops, f32)
    ident = ir.AffineMap.get_identity(5)
    if srow is not None:
        codes_t = ir.RankedTensorType.get([p.kg, p.g // 8, tn, 4], _I8())
        codes = extract_slice(codes_t, p.codes4, [0, 0, n0, 0], [p.kg, p.g // 8, tn, 4],
                              [1, 1, 1, 1])
        index = ir.IndexType.get()

        def scaled(byte: ir.Value, row: ir.Value, _: ir.Value) -> ir.Value:
            # A row gather of the scales (the row uniform along the column loop).
            scale = tensor.extract(scales, [arith.index_castui(index, row), linalg_index(4)])
            return _value(byte, linalg_index(3), scale)

        maps = [dims_map(5, [0, 1, 4, 2]), dims_map(5, [0, 1, 2, 3]), ident]
        decoded = generic([codes, srow], [out], maps, [PARALLEL] * 5, scaled)[0]
    elif perm is None:
        codes_t = ir.RankedTensorType.get([p.kg, p.g // 8, tn, 4], _I8())
        codes = extract_slice(codes_t, p.codes4, [0, 0, n0, 0], [p.kg, p.g // 8, tn, 4],
                              [1, 1, 1, 1])
        maps = [dims_map(5, [0, 1, 4, 2]), dims_map(5, [0, 4]), ident]
        decoded = generic([codes, scales], [out], maps, [PARALLEL] * 5,
                          lambda byte, scale, _: _value(byte, linalg_index(3), scale))[0]
    else:
        index = ir.IndexType.get()

        def body(raw: ir.Value, scale: ir.Value, _: ir.Value) -> ir.Value:
            k = arith.minui(arith.index_castui(index, raw), arith.constant(index, p.k - 1))
            col = arith.addi(n0, linalg_index(4))
            at = arith.addi(arith.muli(col, arith.constant(index, 4)),
                            arith.divui(arith.remui(k, arith.constant(index, 8)),
                                        arith.constant(index, 2)))
            byte = tensor.extract(p.codes2, [arith.divui(k, arith.constant(index, 8)), at])
            return _value(byte, arith.remui(k, arith.constant(index, 2)), scale)

        maps = [dims_map(5, [0, 1, 2, 3]), dims_map(5, [0, 4]), ident]
        decoded = generic([perm, scales], [out], maps, [PARALLEL] * 5, body)[0]
    return tensor.collapse_shape(ir.RankedTensorType.get([p.k, tn], f32), decoded,
                                 [[0, 1, 2, 3], [4]])


def _operands(ctx: LoweringContext, w_at: int) -> tuple[_Packed, ir.Value | None]:
    """The packed operand (at ``w_at``) and the perm, expanded to the decode loops, if any."""
    w, w_t = ctx.operands[w_at], ctx.operand_types[w_at]
    rows, n = w_t.dims
    if not isinstance(rows, int) or not isinstance(n, int) or w_t.element_type != "ui8":
        raise ctx.error(f"packed operand must be static ui8, got {w_t}")
    p = _Packed(ctx, w, rows, n)
    if len(ctx.operands) == w_at + 1:
        return p, None
    perm = ctx.operands[w_at + 1]
    flag = any_oob(ctx, perm, [ctx.index(p.k)], unsigned=True)
    ctx.add_check(flag, f"{ctx.op.name}: perm index out of range [0, {p.k}){where(ctx)}")
    return p, _expand(perm, p.loops(1)[:4])


def _unpermuted(a2: ir.Value, inv: ir.Value, rows: int, p: _Packed) -> tuple[ir.Value, ir.Value]:
    """``(lhs, srow)``: the act-order lhs ``[rows, K]`` (column ``p`` = weight row ``p``) with
    its columns in the codes' order (column ``q`` = old column ``inv[q]``: transposed, a row
    gather, transposed back, all vector code), and each code row's scale row
    ``inv[q] // group`` (i32, expanded to the decode loops)."""
    f32, i32, index = ir.F32Type.get(), _I32(), ir.IndexType.get()
    k = p.k

    at = transposed(a2, [1, 0])
    ident = ir.AffineMap.get_identity(2)

    def pick(q: ir.Value, _: ir.Value) -> ir.Value:
        return tensor.extract(at, [q, linalg_index(1)])

    gathered = generic([inv], [tensor.empty([k, rows], f32)], [dims_map(2, [0]), ident],
                       [PARALLEL] * 2, pick)[0]
    g = arith.constant(index, p.g)
    srow = generic([inv], [tensor.empty([k], i32)], [ir.AffineMap.get_identity(1)] * 2,
                   [PARALLEL], lambda q, _: arith.index_cast(i32, arith.divui(q, g)))[0]
    return transposed(gathered, [1, 0]), _expand(srow, p.loops(1)[:4])


@lowering("mo.gptq_dequantize", "mo.gptq_dequantize_perm")
def _dequantize(ctx: LoweringContext) -> list[ir.Value]:
    p, perm = _operands(ctx, 0)
    tn = _tile_n(p.n)
    loop = TileLoop(p.n // tn, tensor.empty([p.k, p.n], ir.F32Type.get()))
    with loop.body():
        n0 = arith.muli(loop.index, ctx.index(tn)) if tn > 1 else loop.index
        loop.put(_decode(p, n0, tn, perm), [0, n0], [p.k, tn])
    return [loop.result]


@lowering("mo.gptq_qmatmul", "mo.gptq_qmatmul_perm")
def _qmatmul(ctx: LoweringContext) -> list[ir.Value]:
    p, perm = _operands(ctx, 1)
    f32 = ir.F32Type.get()
    a2, rows = _as_rows(ctx, ctx.operands[0], ctx.operand_types[0].rank)
    inv = None
    if perm is not None:  # (the decode path walks the codes through its inverse)
        inv, missing = gptq_gemv.inverse(ctx.operands[2], p.k)
        ctx.add_check(missing, f"{ctx.op.name}: perm is not a permutation of "
                               f"[0, {p.k}){where(ctx)}")
    if gptq_gemv.applies(rows, p.n, p.g):  # decode: a few rows
        return [_from_rows(ctx, gptq_gemv.qmatmul_rows(a2, p.codes2, p.scales, rows, p.n,
                                                       p.k, p.g, inv))]
    srow = None
    if inv is not None and isinstance(rows, int):
        # Act order in the codes' own order (vector code): lhs columns put back in it, code
        # row q scaled by scale row inv[q] // group.
        a2, srow = _unpermuted(a2, inv, rows, p)
    tn = _tile_n(p.n)
    loop = TileLoop(p.n // tn, tensor.empty([rows, p.n], f32))
    with loop.body():
        n0 = arith.muli(loop.index, ctx.index(tn)) if tn > 1 else loop.index
        tile = _decode(p, n0, tn, None if srow is not None else perm, srow)  # [K, tn] f32
        # Two matmuls on half the tile's columns each: with two uses the decoded tile is not
        # fused into the matmul, which would decode each element once per lhs row.
        half = tn // 2 if tn > 1 else tn
        for c0 in range(0, tn, half):
            cols = extract_slice(ir.RankedTensorType.get([p.k, half], f32), tile, [0, c0],
                                 [p.k, half], [1, 1])
            acc = fill(scalar(f32, 0), tensor.empty([rows, half], f32))
            part = linalg.matmul(a2, cols, outs=[acc])
            loop.put(part, [0, arith.addi(n0, ctx.index(c0))], [rows, half])
    return [_from_rows(ctx, loop.result)]
