"""Vectorizable decoding of GGUF blocks: per-group scales first, then every element.

Each encoding's value is ``A * Q``, ``A * Q + B`` or ``A * Q - C`` (in gguf's f32 order),
where ``A``, ``B``, ``C`` belong to a group of 16 or 32 elements and ``Q`` is the element's
integer code. Two linalg.generics compute it:

1. the group parameters, ``[rows, groups]`` f32, read with ``tensor.extract`` from each
   group's block (scalar code, 1/16 or 1/32 of the work; ``tensor.extract`` keeps it out
   of the vector schedule);
2. the elements, a generic over ``[rows, blocks, *layout]`` whose inputs are strided views of
   the block bytes and of the group parameters, each read through a projected-permutation
   map: the CPU schedule tiles and vectorizes it as an elementwise op (``layout`` splits an
   element's index so that each byte it reads is a plain view dim).

Offsets and sizes come from the block layout, so every read stays inside its own block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mlir import ir
from mlir.dialects import arith, tensor

from max.compiler.lowering.builders import (
    PARALLEL,
    dims_map,
    generic,
    index_constant,
    linalg_index,
    reassociation,
    scalar,
)
from max.compiler.lowering.context import DYNAMIC
from max.compiler.lowering.shape_ops import extract_slice
from max.dialects.mo.opdefs.quant_blocks import BLOCKS

Mixed = int | ir.Value


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


_idx = index_constant  # short: on most lines


def _i32(v: int) -> ir.Value:
    return scalar(ir.IntegerType.get_signless(32), v)


def _as_i32(v: ir.Value) -> ir.Value:
    return arith.index_castui(ir.IntegerType.get_signless(32), v)


def _rem(a: ir.Value, b: int) -> ir.Value:
    return arith.remui(a, _idx(b))


def _f32(v: ir.Value, signed: bool = True) -> ir.Value:
    f32 = ir.F32Type.get()
    return arith.sitofp(f32, v) if signed else arith.uitofp(f32, v)


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


@dataclass(frozen=True)
class _Layout:
    """How one encoding's block is read as planes.

    loops: sizes of the element loops inside a block (their product is the block's elements).
    planes: (byte offset, loop dims read) per byte view; the view's dims are those loops'.
    groups: loop dims that index a block's groups (row-major), () for one group per block.
    combine: "mul" (A*Q), "add" (A*Q + B) or "sub" (A*Q - C).
    code: (plane bytes as i32, indices of the ``code_dims`` loops) -> Q as f32.
    params: (block reader, group index) -> (A, B or C or None).
    code_dims: the loop dims whose indices ``code`` reads (a nibble's half, a bit's place).
    """

    loops: tuple[int, ...]
    planes: tuple[tuple[int, tuple[int, ...]], ...]
    groups: tuple[int, ...]
    combine: str
    code: Callable[[Sequence[ir.Value], Sequence[ir.Value]], ir.Value]
    params: Callable[[_Block, ir.Value], tuple[ir.Value, ir.Value | None]]
    code_dims: tuple[int, ...]


def _nib(byte: ir.Value, half: ir.Value, width: int = 4, mask: int = 15) -> ir.Value:
    return arith.andi(arith.shrui(byte, arith.muli(_as_i32(half), _i32(width))), _i32(mask))


def _q4_code(signed_offset: int | None) -> Callable[..., ir.Value]:
    def code(b: Sequence[ir.Value], ix: Sequence[ir.Value]) -> ir.Value:
        q = _nib(b[0], ix[0])
        return _f32(arith.subi(q, _i32(signed_offset))) if signed_offset else _f32(q, False)

    return code


def _k_params(b: _Block, s: ir.Value) -> tuple[ir.Value, ir.Value]:
    sc, mn = _k_scale_min(b, s)
    return arith.mulf(b.f16(0), _f32(sc)), arith.mulf(b.f16(2), _f32(mn))


def _q5_code(b: Sequence[ir.Value], ix: Sequence[ir.Value]) -> ir.Value:
    g4, h = ix
    s = arith.addi(arith.muli(g4, _idx(2)), h)
    bit = arith.andi(arith.shrui(b[1], _as_i32(s)), _i32(1))
    return _f32(arith.ori(_nib(b[0], h), arith.shli(bit, _i32(4))), False)


def _q6_code(b: Sequence[ir.Value], ix: Sequence[ir.Value]) -> ir.Value:
    hh, p = ix  # element j = a*128 + hh*64 + p*32 + u*16 + w
    high = _nib(b[1], arith.addi(arith.muli(hh, _idx(2)), p), width=2, mask=3)
    q = arith.ori(_nib(b[0], hh), arith.shli(high, _i32(4)))
    return _f32(arith.subi(q, _i32(32)))


def _f16_scale(at: int) -> Callable[[_Block, ir.Value], tuple[ir.Value, None]]:
    return lambda b, g: (b.f16(at), None)


def _q6_params(b: _Block, g: ir.Value) -> tuple[ir.Value, None]:
    return arith.mulf(b.f16(208), _f32(b.s8(arith.addi(_idx(192), g)))), None


def _q8_code(b: Sequence[ir.Value], ix: Sequence[ir.Value]) -> ir.Value:
    return _f32(arith.extsi(ir.IntegerType.get_signless(32), b[0]))


# Loop dims are numbered from 2 (0: row, 1: block).
LAYOUTS: dict[str, _Layout] = {
    # element j = h*16 + i: the low nibbles of bytes 2..17, then the high ones.
    "q4_0": _Layout((2, 16), ((2, (3,)),), (), "mul", _q4_code(8), _f16_scale(0), (2,)),
    "q4_1": _Layout((2, 16), ((4, (3,)),), (), "add", _q4_code(None),
                    lambda b, g: (b.f16(0), b.f16(2)), (2,)),
    "q8_0": _Layout((32,), ((2, (2,)),), (), "mul", _q8_code, _f16_scale(0), ()),
    # j = g4*64 + h*32 + i, sub-block s = 2*g4 + h: qs[g4*32 + i] >> 4h.
    "q4_k": _Layout((4, 2, 32), ((16, (2, 4)),), (2, 3), "sub", _q4_code(None), _k_params,
                    (3,)),
    # As q4_k, plus bit s of qh[i] as the fifth bit.
    "q5_k": _Layout((4, 2, 32), ((48, (2, 4)), (16, (4,))), (2, 3), "sub", _q5_code,
                    _k_params, (2, 3)),
    # j = a*128 + hh*64 + p*32 + u*16 + w: ql[a*64 + p*32 + u*16 + w] >> 4hh,
    # qh[a*32 + u*16 + w] >> 2(2hh + p), scale t = j // 16 = (a, hh, p, u).
    "q6_k": _Layout((2, 2, 2, 2, 16), ((0, (2, 4, 5, 6)), (128, (2, 5, 6))), (2, 3, 4, 5),
                    "mul", _q6_code, _q6_params, (3, 4)),
}


def _expand(x: ir.Value, rows: Mixed, tail: Sequence[int], keep: int) -> ir.Value:
    """Splits the last dim of ``x`` (rank ``keep + 1``): -> ``[rows, *tail]``."""
    src = ir.RankedTensorType(x.type)
    shape = [rows if isinstance(rows, int) else DYNAMIC, *tail]
    out_t = ir.RankedTensorType.get(shape, src.element_type)
    groups = [[i] for i in range(keep)] + [list(range(keep, len(shape)))]
    dyn = [] if isinstance(rows, int) else [rows]
    return tensor.ExpandShapeOp(out_t, x, reassociation(groups), dyn, shape).result


def _ngroups(layout: _Layout) -> int:
    n = 1
    for d in layout.groups:
        n *= layout.loops[d - 2]
    return n


def group_params(enc: str, w: ir.Value, rows: Mixed) -> list[ir.Value]:
    """Stage 1: ``[rows, nblocks * groups]`` f32 group parameters (A, and B or C) of ``w``."""
    layout = LAYOUTS[enc]
    nbytes = BLOCKS[enc][1]
    nb = ir.RankedTensorType(w.type).shape[1] // nbytes
    ngroups = _ngroups(layout)
    f32 = ir.F32Type.get()

    def params(*_: ir.Value) -> list[ir.Value]:
        g = linalg_index(1)
        blk = _Block(w, [linalg_index(0)], arith.muli(arith.divui(g, _idx(ngroups)), _idx(nbytes)))
        a, c = layout.params(blk, arith.remui(g, _idx(ngroups)))
        return [a] if c is None else [a, c]

    n_out = 1 if layout.combine == "mul" else 2
    empties = [tensor.empty([rows, nb * ngroups], f32) for _ in range(n_out)]
    return generic([], empties, [ir.AffineMap.get_identity(2)] * n_out, [PARALLEL] * 2, params)


def slice_rows(x: ir.Value, start: Mixed, size: Mixed) -> ir.Value:
    """Rows ``[start, start + size)`` of a 2-D tensor."""
    t = ir.RankedTensorType(x.type)
    out_t = ir.RankedTensorType.get([size if isinstance(size, int) else DYNAMIC, t.shape[1]],
                                    t.element_type)
    return extract_slice(out_t, x, [start, 0], [size, t.shape[1]], [1, 1])


def decode_elements(enc: str, w: ir.Value, params: Sequence[ir.Value], rows: Mixed) -> ir.Value:
    """Stage 2: ``[rows, nblocks * bytes]`` i8 blocks and their group parameters ->
    ``[rows, nblocks * elements]`` f32.

    ``params`` must not be the stage-1 generic's result itself but a slice of it: a generic
    with a single use is fused into its consumer (linalg-fuse-elementwise-ops), which would
    put the scalar group decoding back into the element loop, where it does not vectorize.
    """
    layout = LAYOUTS[enc]
    per_block, nbytes = BLOCKS[enc]
    nb = ir.RankedTensorType(w.type).shape[1] // nbytes
    f32 = ir.F32Type.get()
    i8 = ir.IntegerType.get_signless(8)
    rows_s = rows if isinstance(rows, int) else DYNAMIC
    # Loops (row, block, *layout.loops).
    rank = 2 + len(layout.loops)
    w3 = _expand(w, rows, [nb, nbytes], 1)
    inputs, maps = [], []
    for offset, dims in layout.planes:
        view = [layout.loops[d - 2] for d in dims]
        span = 1
        for v in view:
            span *= v
        plane_t = ir.RankedTensorType.get([rows_s, nb, span], i8)
        plane = extract_slice(plane_t, w3, [0, 0, offset], [rows, nb, span], [1, 1, 1])
        inputs.append(_expand(plane, rows, [nb, *view], 2) if len(view) > 1 else plane)
        maps.append(dims_map(rank, [0, 1, *dims]))
    gshape = [layout.loops[d - 2] for d in layout.groups]
    for p in params:
        inputs.append(_expand(p, rows, [nb, *gshape], 1) if gshape else p)
        maps.append(dims_map(rank, [0, 1, *layout.groups]))
    maps.append(ir.AffineMap.get_identity(rank))
    n_planes = len(layout.planes)
    i32 = ir.IntegerType.get_signless(32)

    def body(*args: ir.Value) -> ir.Value:
        # Q8_0's code sign-extends its byte itself; the others read unsigned bytes.
        planes = list(args[:n_planes]) if enc == "q8_0" else [
            arith.extui(i32, b) for b in args[:n_planes]]
        q = layout.code(planes, [linalg_index(d) for d in layout.code_dims])
        v = arith.mulf(args[n_planes], q)
        if layout.combine == "add":
            return arith.addf(v, args[n_planes + 1])
        if layout.combine == "sub":
            return arith.subf(v, args[n_planes + 1])
        return v

    out_shape = [rows, nb, *layout.loops]
    out = generic(inputs, [tensor.empty(out_shape, f32)], maps, [PARALLEL] * rank, body)[0]
    flat_t = ir.RankedTensorType.get([rows_s, nb * per_block], f32)
    return tensor.collapse_shape(flat_t, out, [[0], list(range(1, rank))])
