"""mo.dequantize and mo.qmatmul: GGUF blocks decoded by integer code, element by element.

One decoder per encoding builds the f32 value of element ``k`` of a row from that row's block
bytes (``tensor.extract`` at offsets inside the element's own block, so nothing out of bounds
is read: the type rule makes the row a whole number of blocks). The arithmetic is gguf's, in
its order and without fused multiply-adds, so results are bit-identical to it.

``mo.qmatmul`` never holds the whole dequantized weight: an ``scf.for`` over tiles of weight
rows decodes one tile (``[K, TILE_N]`` f32, transposed for ``linalg.matmul``) into a small
buffer and multiplies the lhs rows by it; the CPU schedule tiles and vectorizes that matmul.
"""

from __future__ import annotations

from collections.abc import Callable

from mlir import ir
from mlir.dialects import arith, linalg, scf, tensor

from max.compiler.lowering.builders import PARALLEL, fill, generic, linalg_index, scalar
from max.compiler.lowering.context import DYNAMIC, LoweringContext
from max.compiler.lowering.registry import lowering
from max.compiler.lowering.shape_ops import extract_slice, insert_slice
from max.dialects.mo.opdefs.quant_blocks import BLOCKS

# Weight rows decoded at a time by qmatmul: [K, 64] f32 is 1 MiB at K = 4096, within L2, and
# a multiple of the matmul's register tile (32 columns).
TILE_N = 64
# Attribute on qmatmul's tile loop: the CPU schedule looks inside it for the matmul.
TILE_LOOP = "mo.qtiles"

Decoder = Callable[["_Block", ir.Value], ir.Value]


class _Block:
    """Reads bytes of one block of one row: ``w[lead..., base + offset]`` as i32 or f32."""

    def __init__(self, w: ir.Value, lead: list[ir.Value], base: ir.Value):
        self.w, self.lead, self.base = w, lead, base
        self.i32 = ir.IntegerType.get_signless(32)

    def at(self, offset: ir.Value | int) -> ir.Value:
        off = _idx(offset) if isinstance(offset, int) else offset
        return tensor.extract(self.w, [*self.lead, arith.addi(self.base, off)])

    def u8(self, offset: ir.Value | int) -> ir.Value:
        """An unsigned byte as i32."""
        return arith.extui(self.i32, self.at(offset))

    def s8(self, offset: ir.Value | int) -> ir.Value:
        """A signed byte (int8) as i32."""
        return arith.extsi(self.i32, self.at(offset))

    def f16(self, offset: int) -> ir.Value:
        """The little-endian float16 at ``offset``, extended to f32 (exact, as numpy's astype)."""
        i16 = ir.IntegerType.get_signless(16)
        lo = arith.extui(i16, self.at(offset))
        hi = arith.extui(i16, self.at(offset + 1))
        bits = arith.ori(lo, arith.shli(hi, scalar(i16, 8)))
        return arith.extf(ir.F32Type.get(), arith.bitcast(ir.F16Type.get(), bits))


def _idx(v: int) -> ir.Value:
    return arith.constant(ir.IndexType.get(), v)


def _i32(v: int) -> ir.Value:
    return scalar(ir.IntegerType.get_signless(32), v)


def _as_i32(v: ir.Value) -> ir.Value:
    return arith.index_castui(ir.IntegerType.get_signless(32), v)


def _div(a: ir.Value, b: int) -> ir.Value:
    return arith.divui(a, _idx(b))


def _rem(a: ir.Value, b: int) -> ir.Value:
    return arith.remui(a, _idx(b))


def _f32(v: ir.Value, signed: bool = True) -> ir.Value:
    f32 = ir.F32Type.get()
    return arith.sitofp(f32, v) if signed else arith.uitofp(f32, v)


def _nibble(b: _Block, offset: ir.Value, half: ir.Value) -> ir.Value:
    """The low (half 0) or high (half 1) 4 bits of the byte at ``offset``."""
    shift = arith.muli(_as_i32(half), _i32(4))
    return arith.andi(arith.shrui(b.u8(offset), shift), _i32(15))


# -- decoders: (block, j = element index in the block) -> f32, gguf's arithmetic -------------------


def _q4_0(b: _Block, j: ir.Value) -> ir.Value:
    q = _nibble(b, arith.addi(_idx(2), _rem(j, 16)), _div(j, 16))
    return arith.mulf(b.f16(0), _f32(arith.subi(q, _i32(8))))


def _q4_1(b: _Block, j: ir.Value) -> ir.Value:
    q = _nibble(b, arith.addi(_idx(4), _rem(j, 16)), _div(j, 16))
    return arith.addf(arith.mulf(b.f16(0), _f32(q, signed=False)), b.f16(2))


def _q8_0(b: _Block, j: ir.Value) -> ir.Value:
    return arith.mulf(_f32(b.s8(arith.addi(_idx(2), j))), b.f16(0))


def _k_scale_min(b: _Block, s: ir.Value) -> tuple[ir.Value, ir.Value]:
    """Sub-block ``s`` (0..7)'s 6-bit scale and min (ggml get_scale_min_k4).

    Both halves are read at offsets in 4..15 for any ``s`` (``t = s % 4``) and one is selected,
    so no read depends on the branch taken.
    """
    t = _rem(s, 4)
    a = b.u8(arith.addi(_idx(4), t))  # scales[t]
    m = b.u8(arith.addi(_idx(8), t))  # scales[4 + t]
    h = b.u8(arith.addi(_idx(12), t))  # scales[8 + t]
    c63, c15, c30, c2, c4 = _i32(63), _i32(15), _i32(0x30), _i32(2), _i32(4)
    lo_sc, lo_m = arith.andi(a, c63), arith.andi(m, c63)
    hi_sc = arith.ori(arith.andi(h, c15), arith.andi(arith.shrui(a, c2), c30))
    hi_m = arith.ori(arith.shrui(h, c4), arith.andi(arith.shrui(m, c2), c30))
    low = arith.cmpi(arith.CmpIPredicate.ult, s, _idx(4))
    return arith.select(low, lo_sc, hi_sc), arith.select(low, lo_m, hi_m)


def _k_quant(qs_at: int, high_bits_at: int | None) -> Decoder:
    """Q4_K (``high_bits_at`` None) and Q5_K: ``(d * sc) * q - (dmin * m)`` per 32 elements."""

    def decode(b: _Block, j: ir.Value) -> ir.Value:
        s, i = _div(j, 32), _rem(j, 32)
        sc, mn = _k_scale_min(b, s)
        offset = arith.addi(_idx(qs_at), arith.addi(arith.muli(_div(s, 2), _idx(32)), i))
        q = _nibble(b, offset, _rem(s, 2))
        if high_bits_at is not None:
            bit = arith.andi(arith.shrui(b.u8(arith.addi(_idx(high_bits_at), i)), _as_i32(s)),
                             _i32(1))
            q = arith.ori(q, arith.shli(bit, _i32(4)))
        d = arith.mulf(b.f16(0), _f32(sc))
        dm = arith.mulf(b.f16(2), _f32(mn))
        return arith.subf(arith.mulf(d, _f32(q)), dm)

    return decode


def _q6_k(b: _Block, j: ir.Value) -> ir.Value:
    a, r, i = _div(j, 128), _rem(j, 128), _rem(j, 32)
    low = _nibble(b, arith.addi(arith.muli(a, _idx(64)), _rem(r, 64)), _div(r, 64))
    hb = b.u8(arith.addi(_idx(128), arith.addi(arith.muli(a, _idx(32)), i)))
    high = arith.andi(arith.shrui(hb, arith.muli(_as_i32(_div(r, 32)), _i32(2))), _i32(3))
    q = arith.subi(arith.ori(low, arith.shli(high, _i32(4))), _i32(32))
    sc = _f32(b.s8(arith.addi(_idx(192), _div(j, 16))))
    return arith.mulf(arith.mulf(b.f16(208), sc), _f32(q))


DECODERS: dict[str, Decoder] = {
    "q4_0": _q4_0, "q4_1": _q4_1, "q8_0": _q8_0,
    "q4_k": _k_quant(16, None), "q5_k": _k_quant(48, 16), "q6_k": _q6_k,
}


def _encoding(ctx: LoweringContext) -> tuple[str, int, int]:
    enc = ir.StringAttr(ctx.attr("encoding")).value
    if enc not in DECODERS:
        raise ctx.error(f"unknown encoding {enc!r}")
    return (enc, *BLOCKS[enc])


def decode_element(enc: str, w: ir.Value, lead: list[ir.Value], k: ir.Value) -> ir.Value:
    """Element ``k`` (index) of the row ``w[lead...]`` of ``enc`` blocks, as f32."""
    per_block, nbytes = BLOCKS[enc]
    base = arith.muli(_div(k, per_block), _idx(nbytes))
    return DECODERS[enc](_Block(w, lead, base), _rem(k, per_block))


@lowering("mo.dequantize")
def _dequantize(ctx: LoweringContext) -> list[ir.Value]:
    enc, _, nbytes = _encoding(ctx)
    (x,), (x_t,), out_t = ctx.operands, ctx.operand_types, ctx.result_types[0]
    if x_t.element_type != "ui8" or not isinstance(x_t.dims[-1], int) or x_t.dims[-1] % nbytes:
        raise ctx.error(f"operand must be ui8 whole {nbytes}-byte blocks, got {x_t}")
    rank = out_t.rank

    def body(_: ir.Value) -> ir.Value:
        lead = [linalg_index(d) for d in range(rank - 1)]
        return decode_element(enc, x, lead, linalg_index(rank - 1))

    return generic([], [ctx.empty(out_t)], [ir.AffineMap.get_identity(rank)],
                   [PARALLEL] * rank, body)


def _tile_n(n: int) -> int:
    """The largest power of two up to TILE_N dividing ``n``: every tile is whole (static)."""
    t = TILE_N
    while n % t:
        t //= 2
    return t


@lowering("mo.qmatmul")
def _qmatmul(ctx: LoweringContext) -> list[ir.Value]:
    enc, _, nbytes = _encoding(ctx)
    a, w = ctx.operands
    a_t, w_t = ctx.operand_types
    out_t = ctx.result_types[0]
    n, row_bytes = w_t.dims
    if not isinstance(n, int) or not isinstance(row_bytes, int) or row_bytes % nbytes:
        raise ctx.error(f"rhs must be static whole {nbytes}-byte blocks, got {w_t}")
    f32 = ir.F32Type.get()
    a_shape = ir.RankedTensorType(a.type).shape
    k = a_shape[-1]
    # [..., m, k] -> [rows, k]: one matmul over all lhs rows, as mo.matmul does.
    rows_static = all(d != DYNAMIC for d in a_shape[:-1])
    rows = 1
    for d in a_shape[:-1]:
        rows *= d
    a2_t = ir.RankedTensorType.get([rows if rows_static else DYNAMIC, k], f32)
    a2 = a if a_t.rank == 2 else tensor.collapse_shape(
        a2_t, a, [list(range(a_t.rank - 1)), [a_t.rank - 1]])
    rows_v: int | ir.Value = rows if rows_static else tensor.dim(a2, ctx.index(0))
    out2 = fill(scalar(f32, 0), tensor.empty([rows_v, n], f32))

    tn = _tile_n(n)
    loop = scf.ForOp(ctx.index(0), ctx.index(n), ctx.index(tn), [out2])
    loop.operation.attributes[TILE_LOOP] = ir.UnitAttr.get()
    with ir.InsertionPoint(loop.body):
        n0 = loop.induction_variable
        w_tile_t = ir.RankedTensorType.get([tn, row_bytes], ir.IntegerType.get_signless(8))
        w_tile = extract_slice(w_tile_t, w, [n0, 0], [tn, row_bytes], [1, 1])

        def body(_: ir.Value) -> ir.Value:
            # tile[kk, j] = weight row n0 + j, element kk: the rhs of linalg.matmul.
            return decode_element(enc, w_tile, [linalg_index(1)], linalg_index(0))

        tile = generic([], [tensor.empty([k, tn], f32)], [ir.AffineMap.get_identity(2)],
                       [PARALLEL] * 2, body)[0]
        acc_t = ir.RankedTensorType.get([rows if rows_static else DYNAMIC, tn], f32)
        acc = extract_slice(acc_t, loop.inner_iter_args[0], [0, n0], [rows_v, tn], [1, 1])
        part = linalg.matmul(a2, tile, outs=[acc])
        scf.YieldOp([insert_slice(part, loop.inner_iter_args[0], [0, n0], [rows_v, tn])])
    product = loop.results[0]
    if out_t.rank == 2:
        return [product]
    # tensor.reshape, not expand_shape: memref.expand_shape allows one dynamic size per group.
    shape = tensor.from_elements(ir.RankedTensorType.get([out_t.rank], ir.IndexType.get()),
                                 [ctx.dim_value(d) for d in out_t.dims])
    return [tensor.reshape(ctx.tensor_type(out_t), product, shape)]
