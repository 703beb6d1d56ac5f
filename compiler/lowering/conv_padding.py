"""Padding for convolutions and pools: a padded copy of the input, or a split of the op
into an interior that reads the input itself and border bands that read small padded copies
(see :func:`split_window`). Used by :mod:`max.compiler.lowering.conv`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlir import ir
from mlir.dialects import arith, linalg, tensor

from max.compiler.lowering.builders import fill, index_constant, scalar
from max.compiler.lowering.context import DYNAMIC, LoweringContext, element_type
from max.compiler.pipelines.conv_schedule import OWN_INIT

Size = int | ir.Value


def add_size(a: Size, b: int) -> Size:
    if isinstance(a, int):
        return a + b
    return a if b == 0 else arith.addi(a, index_constant(b))


def slice_args(values: Sequence[Size]) -> tuple[list[ir.Value], list[int]]:
    dynamic = [v for v in values if not isinstance(v, int)]
    return dynamic, [v if isinstance(v, int) else DYNAMIC for v in values]


def sizes_of(ctx: LoweringContext, v: ir.Value) -> list[Size]:
    """The sizes of a ranked tensor value (``tensor.dim`` where dynamic)."""
    return [d if d != DYNAMIC else tensor.dim(v, ctx.index(i))
            for i, d in enumerate(ir.RankedTensorType(v.type).shape)]


def _extra(ctx: LoweringContext, size: Size, out: int | str, k: int, s: int, d: int,
           padded: Size) -> Size:
    """Room past the padding that the last window needs (ceil mode), else 0."""
    span = d * (k - 1) + 1
    if isinstance(out, int) and isinstance(padded, int):
        return max(0, (out - 1) * s + span - padded)
    if isinstance(out, int) or not isinstance(size, ir.Value) or isinstance(padded, int):
        return 0
    # Symbolic ceil mode (the type rule allows it only where no window is dropped):
    # (out - 1) * s + span - padded >= 0 whenever the result is not empty.
    need = add_size(arith.muli(add_size(ctx.dim_value(out), -1), ctx.index(s)), span)
    return arith.maxsi(arith.subi(need, padded), ctx.index(0))


def padded(ctx: LoweringContext, x: ir.Value, kernel: Sequence[int], value: float) -> ir.Value:
    """``x`` (N, spatial..., C) with the op's paddings (and ceil mode's extra room) of
    ``value``."""
    x_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    strides, dilations = ctx.dense_ints("strides"), ctx.dense_ints("dilations")
    pads = ctx.dense_ints("paddings")
    sizes = ctx.dims(x_t)
    rank = len(sizes)
    lo = [0, *pads[0::2], 0]
    hi: list[Size] = [0, *pads[1::2], 0]
    for axis in range(1, rank - 1):
        i = axis - 1
        padded = add_size(sizes[axis], lo[axis] + int(hi[axis]))
        extra = _extra(ctx, sizes[axis], out_t.dims[axis], kernel[i], strides[i], dilations[i],
                       padded)
        hi[axis] = int(hi[axis]) + extra if isinstance(extra, int) else \
            arith.addi(extra, ctx.index(int(hi[axis])))
    if all(p == 0 for p in lo) and all(isinstance(h, int) and h == 0 for h in hi):
        return x
    full: list[Size] = []
    for axis in range(rank):
        h = hi[axis]
        full.append(add_size(sizes[axis], lo[axis] + h) if isinstance(h, int)
                    else arith.addi(add_size(sizes[axis], lo[axis]), h))
    et = ir.RankedTensorType(x.type).element_type
    dest = tensor.empty(full, et)
    ones = [1] * rank

    def region(t: ir.Value, offsets: list[Size], extent: list[Size],
               write: Callable[[ir.Value], ir.Value]) -> ir.Value:
        dyn_off, static_off = slice_args(offsets)
        dyn, static = slice_args(extent)
        part = tensor.extract_slice(ir.RankedTensorType.get(static, et), t, dyn_off, dyn, [],
                                    static_off, static, ones)
        return tensor.insert_slice(write(part), t, dyn_off, dyn, [], static_off, static, ones)

    # The interior is the input; only the borders are filled (filling the whole buffer first
    # wrote it twice: for a padded depthwise conv, the padding cost as much as the conv).
    out = region(dest, lo, sizes, lambda part: linalg.copy(x, outs=[part]))
    for axis in range(1, rank - 1):
        for offset, width in ((0, lo[axis]), (add_size(sizes[axis], lo[axis]), hi[axis])):
            if isinstance(width, int) and width == 0:
                continue
            offsets: list[Size] = [0] * rank
            offsets[axis] = offset
            extent = list(full)
            extent[axis] = width
            out = region(out, offsets, extent, lambda part: fill(scalar(et, value), part))
    return out


def split_window(ctx: LoweringContext, x: ir.Value, kernel: Sequence[int], value: float,
                  init: float, compute: Callable[[ir.Value, ir.Value], ir.Value]
                  ) -> ir.Value | None:
    """``compute`` (a window op: the input part, its init -> the result part) over the
    padded ``x`` without padding all of it: the interior outputs read ``x`` itself, and
    only the bands of outputs whose windows reach into the padding read padded copies of
    the few input rows or columns they need. None where the sizes are symbolic or no output
    is interior (then pad the whole input).

    The parts are computed in slices of one ``fill(init, empty)`` of the result, which
    bufferization puts in the caller's buffer. That fill is marked :data:`OWN_INIT` so that
    CSE does not merge it with an equal fill (the next conv's accumulator):
    ``duplicate_shared_inits`` would then split its slices apart, and the parts were copied.
    (Each part's own ``fill(init, empty)`` was merged by CSE where two parts have one
    shape; into a bare empty result, the first part was left on a temporary.)

    A depthwise conv or pool does 9 multiply-adds per element: copying the input into a
    padded buffer cost more than the op itself.
    """
    x_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    strides, dilations = ctx.dense_ints("strides"), ctx.dense_ints("dilations")
    pads = ctx.dense_ints("paddings")
    n, h, w, c = ctx.dims(x_t)
    _, oh, ow, _ = ctx.dims(out_t)
    if not all(isinstance(v, int) for v in (h, w, c, oh, ow)):
        return None
    # Per spatial axis: input size, outputs, stride, dilation, kernel, low padding.
    axes = [(h, oh, strides[0], dilations[0], kernel[0], pads[0]),
            (w, ow, strides[1], dilations[1], kernel[1], pads[2])]
    inner = []  # [first, end) of the interior outputs on each axis
    for size, out, st, dl, k, lo in axes:
        first = -(-lo // st)
        end = min(out, (size - 1 + lo - (k - 1) * dl) // st + 1)
        if end <= first:
            return None
        inner.append((first, end))
    et = ir.RankedTensorType(x.type).element_type

    def part(t: ir.Value, offsets: list[Size], sizes: list[Size]) -> ir.Value:
        dyn, static = slice_args(sizes)
        dyn_o, static_o = slice_args(offsets)
        return tensor.extract_slice(ir.RankedTensorType.get(static, et), t, dyn_o, dyn, [],
                                    static_o, static, [1, 1, 1, 1])

    def put(v: ir.Value, t: ir.Value, offsets: list[Size]) -> ir.Value:
        dyn, static = slice_args(sizes_of(ctx, v))
        dyn_o, static_o = slice_args(offsets)
        return tensor.insert_slice(v, t, dyn_o, dyn, [], static_o, static, [1, 1, 1, 1])

    out_et = element_type(out_t.element_type)

    def block(out: ir.Value, rows: tuple[int, int], cols: tuple[int, int]) -> ir.Value:
        """The outputs [rows) x [cols) computed into ``out``."""
        if rows[0] >= rows[1] or cols[0] >= cols[1]:
            return out
        span = []  # the input each axis needs, in padded coordinates: [start, end)
        for (o0, o1), (size, _, st, dl, k, lo) in zip((rows, cols), axes):
            span.append((o0 * st, (o1 - 1) * st + (k - 1) * dl + 1))
        inside = all(a - lo >= 0 and b - lo <= size
                     for (a, b), (size, _, _, _, _, lo) in zip(span, axes))
        sizes = [n, *(b - a for a, b in span), c]
        if inside:  # a view of x
            src = part(x, [0, *(a - ax[5] for (a, _), ax in zip(span, axes)), 0], sizes)
        else:  # a small padded copy: the part of x inside it, the pad value around
            src = _pad_block(x, [(a - ax[5], b - ax[5]) for (a, b), ax in zip(span, axes)],
                             (h, w), value, sizes, part, put)
        osizes = [n, rows[1] - rows[0], cols[1] - cols[0], ir.RankedTensorType(out.type).shape[3]]
        offsets: list[Size] = [0, rows[0], cols[0], 0]
        return put(compute(src, part(out, offsets, osizes)), out, offsets)

    (r0, r1), (c0, c1) = inner
    start = fill(scalar(out_et, init), ctx.empty(out_t))
    start.owner.attributes[OWN_INIT] = ir.UnitAttr.get()
    out = block(start, (0, r0), (0, ow))
    out = block(out, (r1, oh), (0, ow))
    out = block(out, (r0, r1), (0, c0))
    out = block(out, (r0, r1), (c1, ow))
    return block(out, (r0, r1), (c0, c1))


def _pad_block(x: ir.Value, span: list[tuple[int, int]], hw: tuple[int, int], value: float,
               sizes: list[Size], part: Callable[..., ir.Value],
               put: Callable[..., ir.Value]) -> ir.Value:
    """Rows and columns ``span`` ([start, end) in ``x``'s coordinates, reaching past its
    edges) of ``x``, the positions outside ``x`` set to ``value``.

    Only the margins are filled: a fill of the whole block, identical in two blocks, was
    merged by CSE and then copied by bufferization.
    """
    et = ir.RankedTensorType(x.type).element_type
    src = tensor.empty(sizes, et)
    clip = [(max(a, 0), min(b, size)) for (a, b), size in zip(span, hw)]
    if any(a >= b for a, b in clip):
        return fill(scalar(et, value), src)
    at = [a - s0 for (a, _), (s0, _) in zip(clip, span)]  # where x's part lands
    inner = [b - a for a, b in clip]
    full = [b - a for a, b in span]
    src = put(linalg.copy(part(x, [0, clip[0][0], clip[1][0], 0], [sizes[0], *inner, sizes[3]]),
                          outs=[part(src, [0, *at, 0], [sizes[0], *inner, sizes[3]])]),
              src, [0, *at, 0])
    margins = [((0, 0), (at[0], full[1])), ((at[0] + inner[0], 0),
                                            (full[0] - at[0] - inner[0], full[1])),
               ((at[0], 0), (inner[0], at[1])),
               ((at[0], at[1] + inner[1]), (inner[0], full[1] - at[1] - inner[1]))]
    for (r0, c0), (nr, nc) in margins:
        if nr > 0 and nc > 0:
            where = [0, r0, c0, 0]
            src = put(fill(scalar(et, value), part(src, where, [sizes[0], nr, nc, sizes[3]])),
                      src, where)
    return src


__all__ = ["Size", "add_size", "padded", "sizes_of", "slice_args", "split_window"]
