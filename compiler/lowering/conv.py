"""Convolutions, pooling and fold -> linalg's named convolution and pooling ops.

Padding: a depthwise conv or pool with static sizes is split (``split_window``): its interior
outputs read the input itself, and only the bands of outputs whose windows reach into the
padding read small padded copies of the rows or columns they need (a padded copy of the whole
input cost more than these 9-multiply-add ops). Other convolutions pad first: a tensor of the
padded size whose interior is a ``linalg.copy`` of the input and whose borders are filled (the
CPU schedule vectorizes both; see ``conv_schedule``); the copy is ~4% of a 3x3 conv. The named
ops then read only inside their input. mo.conv2d is ``linalg.conv_2d_nhwc_hwcf`` (groups 1),
``linalg.depthwise_conv_2d_nhwc_hwc`` (one input and one output channel per group) or a generic
over [N, OH, OW, G, F/G] x (R, S, C/G) (other groups); mo.conv3d is one of these per depth tap.
mo.conv2d_transpose with strides is one matmul of every input pixel by every filter tap, each
tap's values then added into its strided window of the result (col2im; a 2x2 / stride-2 one
without padding just puts the blocks in place); with unit strides, or symbolic sizes, one
stride-1 conv of the input spread out by the strides. The named ops are what
:mod:`max.compiler.pipelines.conv_schedule` tiles, decomposes and vectorizes. mo.avg_pool2d
divides a ``pooling_nhwc_sum`` in place by the number of elements each window counts, computed
from the output position (no count tensor is read). mo.fold adds each kernel tap's block values
into a strided window of its result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from mlir import ir
from mlir.dialects import arith, linalg, tensor

from max.compiler.lowering.builders import (
    PARALLEL,
    REDUCTION,
    dims_map,
    fill,
    generic,
    identity_map,
    index_constant,
    linalg_index,
    scalar,
    transposed,
)
from max.compiler.lowering.context import DYNAMIC, LoweringContext, element_type
from max.compiler.lowering.conv_padding import (
    Size,
    add_size,
    padded,
    sizes_of,
    slice_args,
    split_window,
)
from max.compiler.lowering.matmul import rows_matmul, view
from max.compiler.lowering.precision import in_f32
from max.compiler.lowering.registry import lowering
from max.compiler.lowering.shape_ops import extract_slice, insert_slice

# Up to this many groups, a grouped conv is one named (scheduled) conv per group; beyond, one
# generic (plain loops) keeps the code size bounded.
SPLIT_GROUPS = 8


def _named(op_fn: Callable[..., ir.Value], ins: Sequence[ir.Value], out: ir.Value,
           ctx: LoweringContext, strides: Sequence[int] | None = None,
           dilations: Sequence[int] | None = None) -> ir.Value:
    """A named linalg convolution/pooling op with the given (or the MO op's) strides and
    dilations."""
    return op_fn(*ins, outs=[out], strides=list(strides or ctx.dense_ints("strides")),
                 dilations=list(dilations or ctx.dense_ints("dilations")))


@lowering("mo.conv2d")
@in_f32
def _conv2d(ctx: LoweringContext) -> list[ir.Value]:
    x, f = ctx.operands
    f_t, out_t = ctx.operand_types[1], ctx.result_types[0]
    r, s, cg, fo = (int(d) for d in f_t.dims)
    groups = ctx.int_attr("groups")
    if cg == 1 and fo == groups > 1:
        f3 = tensor.collapse_shape(ir.RankedTensorType.get([r, s, fo], element_type(
            out_t.element_type)), f, [[0], [1], [2, 3]])
        y = split_window(ctx, x, (r, s), 0.0, 0.0, lambda xin, o: _named(
            linalg.depthwise_conv_2d_nhwc_hwc, [xin, f3], o, ctx))
        if y is not None:
            return [y]
    if ((r, s) == (1, 1) and groups == 1 and list(ctx.dense_ints("strides")) == [1, 1]
            and not any(ctx.dense_ints("paddings"))):
        # A 1x1 conv is a matmul of the pixels by the filter: the matmul schedule then fuses
        # the zero fill, a bias and an activation into it (the conv schedule zeroed the
        # output in a pass of its own, and left a bias + ReLU to two more passes over it).
        # (A view by tensor.reshape: a collapse_shape is folded back into the matmul, which
        # becomes a generic of plain loops; see matmul.view.)
        return [rows_matmul(ctx, x, view(ctx, f, [cg, fo]), element_type(out_t.element_type))]
    acc = fill(scalar(element_type(out_t.element_type), 0), ctx.empty(out_t))
    xp = padded(ctx, x, (r, s), 0.0)
    return [_conv2d_into(ctx, xp, f, acc, ctx.int_attr("groups"), ctx.dense_ints("strides"),
                         ctx.dense_ints("dilations"))]


@lowering("mo.conv3d")
@in_f32
def _conv3d(ctx: LoweringContext) -> list[ir.Value]:
    """A sum over the depth taps of conv2ds: tap q reads the depth slices q * dd + od * sd,
    collapsed with the batch into the conv2d's batch (so the conv2d schedule applies)."""
    x, f = ctx.operands
    out_t = ctx.result_types[0]
    q, r, s, cg, fo = (int(d) for d in ctx.operand_types[1].dims)
    (sd, *sw), (dd, *dw) = ctx.dense_ints("strides"), ctx.dense_ints("dilations")
    xp = padded(ctx, x, (q, r, s), 0.0)
    et = element_type(out_t.element_type)
    n, od, oh, ow, _ = ctx.dims(out_t)
    xt = ir.RankedTensorType(xp.type)
    c = xt.shape[4]
    hp, wp = (v if v != DYNAMIC else tensor.dim(xp, ctx.index(i))
              for i, v in ((2, xt.shape[2]), (3, xt.shape[3])))
    both = n * od if isinstance(n, int) and isinstance(od, int) else DYNAMIC

    def rows(v: ir.Value, t: list[int]) -> ir.Value:
        """[N, OD, ...] -> [N * OD, ...]."""
        return tensor.collapse_shape(ir.RankedTensorType.get([both, *t[2:]], et), v,
                                     [[0, 1], *([i] for i in range(2, len(t)))])

    out_sizes = [n, od, oh, ow, fo]
    dyn, static = slice_args(out_sizes)
    acc = rows(fill(scalar(et, 0), tensor.empty(out_sizes, et)), static)
    for tap in range(q):
        sizes = [n, od, hp, wp, c]
        dyn_x, static_x = slice_args(sizes)
        v = tensor.extract_slice(ir.RankedTensorType.get(static_x, et), xp, [], dyn_x, [],
                                 [0, tap * dd, 0, 0, 0], static_x, [1, sd, 1, 1, 1])
        f4 = tensor.extract_slice(ir.RankedTensorType.get([r, s, cg, fo], et), f, [], [], [],
                                  [tap, 0, 0, 0, 0], [1, r, s, cg, fo], [1, 1, 1, 1, 1])
        acc = _conv2d_into(ctx, rows(v, static_x), f4, acc, ctx.int_attr("groups"), sw, dw)
    if isinstance(n, int) or isinstance(od, int):
        return [tensor.expand_shape(ctx.tensor_type(out_t), acc, [[0, 1], [2], [3], [4]], dyn,
                                    static)]
    # tensor.reshape: memref.expand_shape allows one dynamic size per group (and aborts).
    shape = tensor.from_elements(ir.RankedTensorType.get([5], ir.IndexType.get()),
                                 [v if isinstance(v, ir.Value) else ctx.index(v)
                                  for v in out_sizes])
    return [tensor.reshape(ctx.tensor_type(out_t), acc, shape)]


def _conv2d_into(ctx: LoweringContext, xp: ir.Value, f: ir.Value, acc: ir.Value, groups: int,
                 strides: Sequence[int], dilations: Sequence[int]) -> ir.Value:
    """``acc`` plus the conv of the padded NHWC ``xp`` by the RSCF filter ``f``."""
    r, s, cg, fo = ir.RankedTensorType(f.type).shape
    et = ir.RankedTensorType(f.type).element_type
    if groups == 1:
        return _named(linalg.conv_2d_nhwc_hwcf, [xp, f], acc, ctx, strides, dilations)
    if cg == 1 and fo == groups:
        # One channel in, one out per group: depthwise, filter [R, S, 1, C] -> [R, S, C].
        f3 = tensor.collapse_shape(ir.RankedTensorType.get([r, s, fo], et), f, [[0], [1], [2, 3]])
        return _named(linalg.depthwise_conv_2d_nhwc_hwc, [xp, f3], acc, ctx, strides, dilations)
    if groups <= SPLIT_GROUPS:
        # One conv_2d_nhwc_hwcf per group on its channel slices: each is scheduled (vector
        # code), where the grouped generic is plain loops.
        fg = fo // groups
        out = acc
        for g in range(groups):
            def part(v: ir.Value, offset: int, width: int) -> ir.Value:
                sizes = sizes_of(ctx, v)[:-1] + [width]
                dyn, static = slice_args(sizes)
                return tensor.extract_slice(ir.RankedTensorType.get(static, et), v, [], dyn, [],
                                            [0, 0, 0, offset], static, [1, 1, 1, 1])

            y = _named(linalg.conv_2d_nhwc_hwcf, [part(xp, g * cg, cg), part(f, g * fg, fg)],
                       part(out, g * fg, fg), ctx, strides, dilations)
            dyn, static = slice_args(sizes_of(ctx, y))
            out = tensor.insert_slice(y, out, [], dyn, [], [0, 0, 0, g * fg], static, [1, 1, 1, 1])
        return out
    return _grouped(ctx, xp, f, acc, groups, strides, dilations)


def _grouped(ctx: LoweringContext, xp: ir.Value, f: ir.Value, acc: ir.Value,
             groups: int, strides: Sequence[int], dilations: Sequence[int]) -> ir.Value:
    """Grouped convolution as one generic on [N, H, W, G, C/G] and [R, S, C/G, G, F/G]."""
    r, s, cg, fo = ir.RankedTensorType(f.type).shape
    fg = fo // groups
    (sh, sw), (dh, dw) = strides, dilations
    xt = ir.RankedTensorType(xp.type)
    et = xt.element_type
    n, h, w, _ = xt.shape
    # expand_shape takes the dynamic output sizes: those of the source dims.
    sizes = [tensor.dim(xp, ctx.index(i)) if d == DYNAMIC else d
             for i, d in enumerate((n, h, w))] + [groups, cg]
    dyn, static = slice_args(sizes)
    x5 = tensor.expand_shape(ir.RankedTensorType.get(static, et), xp,
                             [[0], [1], [2], [3, 4]], dyn, static)
    f5 = tensor.expand_shape(ir.RankedTensorType.get([r, s, cg, groups, fg], et), f,
                             [[0], [1], [2], [3, 4]], [], [r, s, cg, groups, fg])
    at = ir.RankedTensorType(acc.type)
    osizes = [tensor.dim(acc, ctx.index(i)) if d == DYNAMIC else d
              for i, d in enumerate(at.shape[:3])] + [groups, fg]
    dyn, static = slice_args(osizes)
    acc5 = tensor.expand_shape(ir.RankedTensorType.get(static, et), acc,
                               [[0], [1], [2], [3, 4]], dyn, static)
    # Loops: n, oh, ow, g, f, kh, kw, c.
    d = [ir.AffineDimExpr.get(i) for i in range(8)]
    x_map = ir.AffineMap.get(8, 0, [d[0], d[1] * sh + d[5] * dh, d[2] * sw + d[6] * dw, d[3], d[7]])
    out = generic([x5, f5], [acc5], [x_map, dims_map(8, [5, 6, 7, 3, 4]),
                                    dims_map(8, [0, 1, 2, 3, 4])],
                  [PARALLEL] * 5 + [REDUCTION] * 3,
                  lambda a, b, c: arith.addf(c, arith.mulf(a, b)))[0]
    return tensor.collapse_shape(at, out, [[0], [1], [2], [3, 4]])


def _mul(a: Size, b: int) -> Size:
    return a * b if isinstance(a, int) else arith.muli(a, index_constant(b))


@lowering("mo.conv2d_transpose")
@in_f32
def _conv2d_transpose(ctx: LoweringContext) -> list[ir.Value]:
    """With static sizes and strides, every pixel's taps placed (:func:`_transpose_as_matmul`)
    or added (:func:`_transpose_as_col2im`) into the result. Else a stride-1 conv of the
    input spread out by the strides (zeros between its pixels), padded by ``d * (k - 1)``
    less the paddings, with the filter flipped and its channel dims swapped; paddings larger
    than ``d * (k - 1)`` crop the conv's result instead."""
    x, f = ctx.operands
    x_t, f_t, out_t = ctx.operand_types[0], ctx.operand_types[1], ctx.result_types[0]
    r, s, fo, ci = (int(d) for d in f_t.dims)
    (sh, sw), (dh, dw) = ctx.dense_ints("strides"), ctx.dense_ints("dilations")
    pt, pb, pl, pr = ctx.dense_ints("paddings")
    et = element_type(out_t.element_type)
    n, h, w, _ = ctx.dims(x_t)
    if ((sh, sw) == (r, s) and (dh, dw) == (1, 1) and not any((pt, pb, pl, pr))
            and all(isinstance(d, int) for d in (n, h, w))
            and list(out_t.dims) == [n, h * r, w * s, fo]):
        return [_transpose_as_matmul(ctx, x, f, (n, h, w, ci), (r, s, fo), et)]
    oh, ow = out_t.dims[1:3]
    if ((sh, sw) != (1, 1) and all(isinstance(d, int) for d in (n, h, w, oh, ow))
            and min(pt, pb, pl, pr) >= 0):
        return [_transpose_as_col2im(ctx, x, f, (n, h, w, ci), (r, s, fo), (oh, ow), et)]
    lo = [dh * (r - 1) - pt, dw * (s - 1) - pl]
    hi = [dh * (r - 1) - pb, dw * (s - 1) - pr]
    spread = [add_size(_mul(h, sh), 1 - sh), add_size(_mul(w, sw), 1 - sw)]
    sizes = [n, *(add_size(v, max(a, 0) + max(b, 0)) for v, a, b in zip(spread, lo, hi)), ci]
    dest = fill(scalar(et, 0), tensor.empty(sizes, et))
    dyn, static = slice_args(ctx.dims(x_t))
    xp = tensor.insert_slice(x, dest, [], dyn, [], [0, max(lo[0], 0), max(lo[1], 0), 0], static,
                             [1, sh, sw, 1])
    fl = _flipped_filter(f, (r, s, fo, ci), et)
    crop = [max(-lo[0], 0), max(-lo[1], 0)]
    full = [n, *(add_size(ctx.dim_value(o) if isinstance(o, str) else o, c + max(-b, 0))
                 for o, c, b in zip(out_t.dims[1:3], crop, hi)), fo]
    acc = fill(scalar(et, 0), tensor.empty(full, et))
    y = linalg.conv_2d_nhwc_hwcf(xp, fl, outs=[acc], strides=[1, 1], dilations=[dh, dw])
    if crop == [0, 0] and all(b >= 0 for b in hi):
        return [y]
    dyn, static = slice_args(ctx.dims(out_t))
    return [tensor.extract_slice(ctx.tensor_type(out_t), y, [], dyn, [], [0, *crop, 0], static,
                                 [1, 1, 1, 1])]


def _flipped_filter(f: ir.Value, dims: tuple[int, int, int, int], et: ir.Type) -> ir.Value:
    """Filter [R, S, F, C] -> [R, S, C, F], flipped in R and S: a named transpose (scheduled;
    a constant or weight filter is stored transposed at load time, ``arg_layouts``), then each
    tap's contiguous [C, F] block copied to its mirrored tap (vectorized copies). One generic
    with a reversing map was plain loops."""
    r, s, fo, ci = dims
    swapped = transposed(f, [0, 1, 3, 2])
    out = tensor.empty([r, s, ci, fo], et)
    tap_t = ir.RankedTensorType.get([1, 1, ci, fo], et)
    for i in range(r):
        for j in range(s):
            tap = extract_slice(tap_t, swapped, [r - 1 - i, s - 1 - j, 0, 0], [1, 1, ci, fo],
                                [1, 1, 1, 1])
            out = insert_slice(tap, out, [i, j, 0, 0], [1, 1, ci, fo])
    return out


def _taps_product(ctx: LoweringContext, x: ir.Value, f: ir.Value,
                  x_dims: tuple[int, int, int, int], taps: tuple[int, int, int],
                  et: ir.Type) -> ir.Value:
    """Each input pixel times every filter tap: ``[N*H*W, C] @ [C, R*S*F]`` viewed as
    ``[N, H, W, R, S, F]`` (the filter ``[R, S, F, C]`` permuted to ``[C, R, S, F]``: a named
    transpose, which a constant or weight filter is stored as at load time, ``arg_layouts``)."""
    n, h, w, ci = x_dims
    r, s, fo = taps
    f_t = transposed(f, [3, 0, 1, 2])
    product = linalg.matmul(view(ctx, x, [n * h * w, ci]), view(ctx, f_t, [ci, r * s * fo]),
                            outs=[fill(scalar(et, 0), tensor.empty([n * h * w, r * s * fo],
                                                                   et))])
    return view(ctx, product, [n, h, w, r, s, fo])


def _transpose_as_col2im(ctx: LoweringContext, x: ir.Value, f: ir.Value,
                         x_dims: tuple[int, int, int, int], taps: tuple[int, int, int],
                         out_hw: tuple[int, int], et: ir.Type) -> ir.Value:
    """A strided transposed conv as every pixel's taps (:func:`_taps_product`, one matmul)
    added into place: tap (i, j)'s ``[N, H, W, F]`` values go to the output window at
    ``(i * dh, j * dw)`` with the strides' step, then the paddings are cropped (col2im, as
    ``mo.fold``). The conv of the input spread out by the strides multiplied zeros: ``sh *
    sw`` times the work (4x4 kernels at stride 2: 3.4x torch's time)."""
    n, h, w, _ = x_dims
    r, s, fo = taps
    (sh, sw), (dh, dw) = ctx.dense_ints("strides"), ctx.dense_ints("dilations")
    pt, _, pl, _ = ctx.dense_ints("paddings")
    oh, ow = out_hw
    blocks = _taps_product(ctx, x, f, x_dims, taps, et)
    full = [n, (h - 1) * sh + (r - 1) * dh + 1, (w - 1) * sw + (s - 1) * dw + 1, fo]
    out = fill(scalar(et, 0), tensor.empty(full, et))
    block_t = ir.RankedTensorType.get([n, h, w, fo], et)
    for i in range(r):
        for j in range(s):
            tap = tensor.extract_slice(block_t, blocks, [], [], [], [0, 0, 0, i, j, 0],
                                       [n, h, w, 1, 1, fo], [1] * 6)
            out = _add_into(out, tap, [], [0, i * dh, j * dw, 0], [n, h, w, fo],
                            [1, sh, sw, 1])
    if full == [n, oh, ow, fo]:
        return out
    return tensor.extract_slice(ir.RankedTensorType.get([n, oh, ow, fo], et), out, [], [], [],
                                [0, pt, pl, 0], [n, oh, ow, fo], [1, 1, 1, 1])


def _transpose_as_matmul(ctx: LoweringContext, x: ir.Value, f: ir.Value,
                         x_dims: tuple[int, int, int, int], taps: tuple[int, int, int],
                         et: ir.Type) -> ir.Value:
    """A transposed conv whose windows do not overlap (kernel = stride, no padding, no
    dilation: the 2x2 / stride-2 upsampling of decoders) as one matmul: each input pixel
    times the filter gives its own R x S block of output pixels, ``[N*H*W, C] @ [C, R*S*F]``,
    then the blocks put in place (``[N, H, W, R, S, F]`` -> ``[N, H, R, W, S, F]``, a copy).
    The spread-out input conv multiplied zeros: R*S times the work (2x torch at 2x2)."""
    n, h, w, _ = x_dims
    r, s, fo = taps
    d = [ir.AffineDimExpr.get(i) for i in range(6)]
    blocks = _taps_product(ctx, x, f, x_dims, taps, et)
    placed = generic([blocks], [tensor.empty([n, h, r, w, s, fo], et)],
                     [ir.AffineMap.get(6, 0, [d[0], d[1], d[3], d[2], d[4], d[5]]),
                      identity_map(6)], [PARALLEL] * 6, lambda v, _: v)[0]
    return view(ctx, placed, [n, h * r, w * s, fo])


def _window(ctx: LoweringContext, kernel: Sequence[int]) -> ir.Value:
    et = element_type(ctx.result_types[0].element_type)
    return tensor.empty(list(kernel), et)


@lowering("mo.max_pool2d")
@in_f32
def _max_pool2d(ctx: LoweringContext) -> list[ir.Value]:
    return [_pool(ctx, linalg.pooling_nhwc_max, ctx.dense_ints("kernel"), -math.inf)]


def _pool(ctx: LoweringContext, op_fn: Callable[..., ir.Value], kernel: Sequence[int],
          value: float) -> ir.Value:
    """A pooling op over the input padded with ``value`` (also its accumulators' start):
    split (:func:`split_window`) where the sizes allow, else over a padded copy."""
    x = ctx.operands[0]
    y = split_window(ctx, x, kernel, value, value,
                      lambda xin, o: _named(op_fn, [xin, _window(ctx, kernel)], o, ctx))
    if y is not None:
        return y
    et = element_type(ctx.result_types[0].element_type)
    acc = fill(scalar(et, value), ctx.empty(ctx.result_types[0]))
    return _named(op_fn, [padded(ctx, x, kernel, value), _window(ctx, kernel)], acc, ctx)


def _taps_inside(o: ir.Value, k: int, s: int, d: int, lo: int, hi: Size) -> ir.Value:
    """How many of the k taps of output position ``o`` fall in [lo, hi) of the padded axis."""
    c = index_constant
    start = arith.muli(o, c(s))
    # Taps j with lo <= start + j * d < hi:
    # j in [ceil((lo - start) / d), floor((hi - 1 - start) / d)], and in [0, k).
    first = arith.maxsi(arith.ceildivsi(arith.subi(c(lo), start), c(d)), c(0))
    hi_v = hi if isinstance(hi, ir.Value) else c(hi)
    last = arith.minsi(arith.floordivsi(arith.subi(arith.subi(hi_v, c(1)), start), c(d)),
                       c(k - 1))
    return arith.maxsi(arith.addi(arith.subi(last, first), c(1)), c(0))


@lowering("mo.avg_pool2d")
@in_f32
def _avg_pool2d(ctx: LoweringContext) -> list[ir.Value]:
    kernel = ctx.dense_ints("kernel")
    x_t, out_t = ctx.operand_types[0], ctx.result_types[0]
    et = element_type(out_t.element_type)
    total = _pool(ctx, linalg.pooling_nhwc_sum, kernel, 0.0)
    strides, dilations = ctx.dense_ints("strides"), ctx.dense_ints("dilations")
    pt, pb, pl, pr = ctx.dense_ints("paddings")
    h, w = ctx.dims(x_t)[1:3]
    # In padded coordinates the input is [pt, pt + H); with count_boundary the padding counts
    # too, [0, pt + H + pb), but never ceil mode's extra room past it.
    if ctx.int_attr("count_boundary"):
        rows, cols = (0, add_size(h, pt + pb)), (0, add_size(w, pl + pr))
    else:
        rows, cols = (pt, add_size(h, pt)), (pl, add_size(w, pl))

    def body(v: ir.Value) -> ir.Value:
        nh = _taps_inside(linalg_index(1), kernel[0], strides[0], dilations[0], *rows)
        nw = _taps_inside(linalg_index(2), kernel[1], strides[1], dilations[1], *cols)
        count = arith.index_cast(ir.IntegerType.get_signless(64), arith.muli(nh, nw))
        return arith.divf(v, arith.sitofp(et, count))

    # In place: the sums become the means (no second buffer).
    return generic([], [total], [identity_map(4)], [PARALLEL] * 4, body)


def _add_into(out: ir.Value, values: ir.Value, dyn: list[ir.Value], offsets: list[int],
              sizes: list[int], strides: list[int]) -> ir.Value:
    """``out`` with ``values`` added into its (strided) window at ``offsets``; ``dyn``: the
    values of the dynamic ``sizes``."""
    region = tensor.extract_slice(values.type, out, [], dyn, [], offsets, sizes, strides)
    summed = generic([values], [region], [identity_map(4)] * 2, [PARALLEL] * 4,
                     lambda a, b: arith.addf(a, b))[0]
    return tensor.insert_slice(summed, out, [], dyn, [], offsets, sizes, strides)


@lowering("mo.fold")
@in_f32
def _fold(ctx: LoweringContext) -> list[ir.Value]:
    """Per kernel tap (i, j), its [N, C, BH, BW] block values are added to the strided window
    of the padded result they belong to; the padding is cropped at the end."""
    (x,), out_t = ctx.operands, ctx.result_types[0]
    (kh, kw), (sh, sw), (dh, dw) = (ctx.dense_ints(a) for a in ("kernel", "strides", "dilations"))
    pt, pb, pl, pr = ctx.dense_ints("paddings")
    n, c, oh, ow = ctx.dims(out_t)
    assert isinstance(oh, int) and isinstance(ow, int) and isinstance(c, int)
    bh = (oh + pt + pb - dh * (kh - 1) - 1) // sh + 1
    bw = (ow + pl + pr - dw * (kw - 1) - 1) // sw + 1
    et = element_type(out_t.element_type)
    six = [n, c, kh, kw, bh, bw]
    dyn, static = slice_args(six)
    cols = tensor.expand_shape(ir.RankedTensorType.get(static, et), x,
                               [[0], [1, 2, 3], [4, 5]], dyn, static)
    full = [n, c, oh + pt + pb, ow + pl + pr]
    out = fill(scalar(et, 0), tensor.empty(full, et))
    block = [n, c, bh, bw]
    dyn_b, static_b = slice_args(block)
    block_t = ir.RankedTensorType.get(static_b, et)
    for i in range(kh):
        for j in range(kw):
            tap = tensor.extract_slice(block_t, cols, [], dyn_b, [], [0, 0, i, j, 0, 0],
                                       [static_b[0], c, 1, 1, bh, bw], [1] * 6)
            out = _add_into(out, tap, dyn_b, [0, 0, i * dh, j * dw], static_b, [1, 1, sh, sw])
    dyn_o, static_o = slice_args([n, c, oh, ow])
    return [tensor.extract_slice(ctx.tensor_type(out_t), out, [], dyn_o, [], [0, 0, pt, pl],
                                 static_o, [1, 1, 1, 1])]
