"""mo.dequantize and mo.qmatmul: GGUF blocks decoded by vector code, tile by tile.

Decoding is ``quant_decode``'s two stages (group scales, then elements through strided byte
views), bit-identical to gguf: its f32 operations in its order, no fused multiply-adds. Every
read is at an offset inside its own block (the type rule makes a row whole blocks), so nothing
out of bounds is read.

Both rules loop over tiles of rows (:class:`TileLoop`: an ``scf.forall`` tagged
``TILE_LOOP``, which the CPU schedule looks into; the threads share the tiles).
``mo.qmatmul`` never holds the whole dequantized weight: it computes the group scales of the
weight (1/16 or 1/32 of its elements), then per tile of ``TILE_N`` weight rows
decodes the tile (``[TILE_N, K]`` f32, 1 MiB at K = 4096) and multiplies it by the transposed
lhs, building the result transposed (``W @ lhs^T``, then one transpose of ``[N, rows]``).
Q4_0, Q4_1 and Q8_0 with at most 8 static lhs rows, or symbolic rows, take ``quant_gemv``
instead (LLM decode: the weight streamed once, decoded in registers).
"""

from __future__ import annotations

import contextlib

from mlir import ir
from mlir.dialects import arith, linalg, scf, tensor

from max.compiler.lowering.builders import (
    PARALLEL,
    fill,
    generic,
    index_constant,
    reassociation,
    scalar,
)
from max.compiler.lowering import quant_gemv
from max.compiler.lowering.context import DYNAMIC, LoweringContext
from max.compiler.lowering.quant_decode import (
    LAYOUTS,
    Mixed,
    decode_elements,
    group_params,
    slice_rows,
)
from max.compiler.lowering.registry import lowering
from max.compiler.lowering.shape_ops import extract_slice, insert_slice, mixed, reshape_to
from max.compiler.lowering.weight_layouts import SPLIT_ATTR
from max.dialects.mo.opdefs.quant_blocks import BLOCKS

# Weight rows decoded at a time by qmatmul: [64, K] f32 is 1 MiB at K = 4096, within L2, and
# each half (one matmul, see below) a multiple of the matmul's register tile (8 rows).
TILE_N = 64
# Attribute on qmatmul's tile loop: the CPU schedule looks inside it for the matmul.
TILE_LOOP = "mo.qtiles"


class TileLoop:
    """The loop over ``count`` tiles that builds ``init``: an ``scf.forall`` tagged
    :data:`TILE_LOOP`. The tiles are independent, so the threads share them (OpenMP's static
    schedule: each thread one range of tiles; a single thread runs them as a loop), and the
    CPU schedule keeps each tile's ops on the thread that runs it. Before, an ``scf.for``: a
    prefill-shaped quantized matmul ran on one core whatever the threads (Q4_1 [128, 576] x
    [1536, 576] 2.16 ms on one thread and on two).

    The body's ops go inside ``with loop.body():``, from :attr:`index` (the tile's number);
    :meth:`put` writes a part of the tile into the result, :attr:`result`. One static tile is
    no loop at all (its ops at the top, where the schedule may split them over threads):
    MLIR's fold of a single-iteration forall aborts on one that inserts two parts.
    """

    def __init__(self, count: Mixed, init: ir.Value) -> None:
        self._forall: scf.ForallOp | None = None
        self._value = init
        self.index: ir.Value
        if isinstance(count, int) and count == 1:
            self.index = index_constant(0)
            return
        forall = scf.ForallOp([0], [count], [1], [init])
        forall.operation.attributes[TILE_LOOP] = ir.UnitAttr.get()
        forall.terminator()  # now: the parts are put into it between the body's ops
        self._forall = forall
        self.index = forall.induction_variables[0]

    def body(self) -> contextlib.AbstractContextManager[object]:
        """The insertion point of the tile's ops."""
        if self._forall is None:
            return contextlib.nullcontext()
        return ir.InsertionPoint.at_block_terminator(self._forall.body)

    def put(self, part: ir.Value, offsets: list[Mixed], sizes: list[Mixed]) -> None:
        """``part`` into the result at ``offsets`` (a ``tensor.parallel_insert_slice``; the
        tiles' parts never overlap)."""
        if self._forall is None:
            self._value = insert_slice(part, self._value, offsets, sizes)
            return
        with ir.InsertionPoint(self._forall.terminator().region.blocks[0]):
            (do, so), (ds, ss), (dt, st) = mixed(offsets), mixed(sizes), mixed([1] * len(sizes))
            tensor.parallel_insert_slice(part, self._forall.inner_iter_args[0],
                                         do, ds, dt, so, ss, st)

    @property
    def result(self) -> ir.Value:
        return self._value if self._forall is None else self._forall.results[0]


def _encoding(ctx: LoweringContext) -> tuple[str, int, int]:
    enc = ir.StringAttr(ctx.attr("encoding")).value
    if enc not in LAYOUTS:
        raise ctx.error(f"unknown encoding {enc!r}")
    return (enc, *BLOCKS[enc])


def _transpose(x: ir.Value, rows: Mixed, cols: Mixed) -> ir.Value:
    """``[rows, cols]`` -> ``[cols, rows]`` as an elementwise generic (a transposed read)."""
    et = ir.RankedTensorType(x.type).element_type
    maps = [ir.AffineMap.get_permutation([1, 0]), ir.AffineMap.get_identity(2)]
    return generic([x], [tensor.empty([cols, rows], et)], maps, [PARALLEL] * 2,
                   lambda v, _: v)[0]


def _as_rows(ctx: LoweringContext, x: ir.Value, rank: int) -> tuple[ir.Value, Mixed]:
    """``[..., k]`` -> ``[rows, k]`` (leading dims collapsed, or a 1 added) and ``rows``."""
    t = ir.RankedTensorType(x.type)
    if rank == 1:
        out_t = ir.RankedTensorType.get([1, t.shape[0]], t.element_type)
        return tensor.ExpandShapeOp(out_t, x, reassociation([[0, 1]]), [], [1, t.shape[0]]).result, 1
    if rank > 2:
        lead = t.shape[:-1]
        n = 1
        for d in lead:
            n *= d
        static = all(d != DYNAMIC for d in lead)
        flat_t = ir.RankedTensorType.get([n if static else DYNAMIC, t.shape[-1]], t.element_type)
        x = tensor.collapse_shape(flat_t, x, [list(range(rank - 1)), [rank - 1]])
    rows = ir.RankedTensorType(x.type).shape[0]
    return x, rows if rows != DYNAMIC else tensor.dim(x, ctx.index(0))


def _from_rows(ctx: LoweringContext, x: ir.Value) -> ir.Value:
    """``[rows, n]`` -> the result's type (the inverse of ``_as_rows``)."""
    out_t = ctx.result_types[0]
    if out_t.rank == 2:
        return x
    return reshape_to(ctx, x, out_t)


@lowering("mo.dequantize")
def _dequantize(ctx: LoweringContext) -> list[ir.Value]:
    enc, _, nbytes = _encoding(ctx)
    (x,), (x_t,) = ctx.operands, ctx.operand_types
    if x_t.element_type != "ui8" or not isinstance(x_t.dims[-1], int) or x_t.dims[-1] % nbytes:
        raise ctx.error(f"operand must be ui8 whole {nbytes}-byte blocks, got {x_t}")
    x2, rows = _as_rows(ctx, x, x_t.rank)
    k = ctx.result_types[0].dims[-1]
    params = group_params(enc, x2, rows)
    # Row tiles (whole ones where the row count is static): each tile's elements are one
    # generic that the CPU schedule vectorizes, fed by slices of the group parameters.
    tile = _tile_n(rows) if isinstance(rows, int) else 1
    out = tensor.empty([rows, k], ir.F32Type.get())
    loop = TileLoop(rows // tile if isinstance(rows, int) else rows, out)
    with loop.body():
        r0 = arith.muli(loop.index, ctx.index(tile)) if tile > 1 else loop.index
        part = decode_elements(enc, slice_rows(x2, r0, tile),
                               [slice_rows(p, r0, tile) for p in params], tile)
        loop.put(part, [r0, 0], [tile, k])
    return [_from_rows(ctx, loop.result)]


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
    n, row_bytes = w_t.dims
    if not isinstance(n, int) or not isinstance(row_bytes, int) or row_bytes % nbytes:
        raise ctx.error(f"rhs must be static whole {nbytes}-byte blocks, got {w_t}")
    k = ir.RankedTensorType(a.type).shape[-1]
    a2, rows = _as_rows(ctx, a, a_t.rank)  # one matmul over all lhs rows
    if quant_gemv.applies(enc, rows):  # few rows (decode): each block decoded once, in registers
        split = SPLIT_ATTR in ctx.op.attributes  # the weight is stored "ENC_split"
        return [_from_rows(ctx, quant_gemv.qmatmul_rows(enc, a2, w, rows, n, k, split))]
    return [_from_rows(ctx, _tiled(ctx, enc, a2, w, rows, n, k))]


def _tiled(ctx: LoweringContext, enc: str, a2: ir.Value, w: ir.Value, rows: Mixed, n: int,
           k: int) -> ir.Value:
    """``[rows, n]``: the weight decoded tile by tile into f32, each tile multiplied by ``a2``."""
    f32 = ir.F32Type.get()
    # Each tile computes (W_tile @ lhs^T): the decoded rows of W are the matmul's lhs, so
    # decoding writes them row-major, as the blocks lie. The result is built transposed.
    a_t2 = _transpose(a2, rows, k)
    out_t = tensor.empty([n, rows], f32)

    params = group_params(enc, w, n)  # the scales only: 1/16 or 1/32 of the weight's size
    tn = _tile_n(n)
    loop = TileLoop(n // tn, out_t)
    with loop.body():
        n0 = arith.muli(loop.index, ctx.index(tn)) if tn > 1 else loop.index
        tile = decode_elements(enc, slice_rows(w, n0, tn),
                               [slice_rows(p, n0, tn) for p in params], tn)  # [tn, k] f32
        # Two matmuls, each on half of the tile's rows: with two uses, the decoded tile is
        # not fused into the matmul (linalg-fuse-elementwise-ops fuses single-use producers),
        # which would decode each weight element once per lhs row, in unscheduled loops.
        half = tn // 2 if tn > 1 else tn
        for r0 in range(0, tn, half):
            part_t = ir.RankedTensorType.get([half, k], f32)
            rows_of_tile = extract_slice(part_t, tile, [r0, 0], [half, k], [1, 1])
            acc = fill(scalar(f32, 0), tensor.empty([half, rows], f32))
            part = linalg.matmul(rows_of_tile, a_t2, outs=[acc])
            loop.put(part, [arith.addi(n0, ctx.index(r0)), 0], [half, rows])
    return _transpose(loop.result, n, rows)
