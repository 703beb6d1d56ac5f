"""Convolution and pooling over the spatial dims of NHWC (NDHWC) tensors: mo.conv2d,
mo.conv3d, mo.conv2d_transpose, mo.max_pool2d, mo.avg_pool2d; and mo.fold (col2im, NCHW).

Each output spatial dim follows from its input dim ``size``, window ``k``, stride ``s``,
dilation ``d`` and paddings ``lo``/``hi`` as ``(size + lo + hi - d * (k - 1) - 1) // s + 1``
(floor mode), so symbolic batch and spatial dims stay symbolic. Pooling's ``ceil_mode``
rounds up instead, dropping a last window that would start in the bottom/right padding
(PyTorch's rule); on a symbolic dim that is only allowed where no window can start there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from max.dialects.mo.dim import Dim
from max.dialects.mo.opdefs.base import (
    INT,
    INTS,
    AttrDef,
    OpDef,
    TensorSig,
    TypeLike,
    TypeRuleError,
    same_device,
    same_dtype,
    shape_text,
    static,
)
from max.dialects.mo.opdefs.elementwise import floating
from max.dialects.mo.opdefs.reference import REFERENCES, FoldContext, Folder


def _ints(op: str, attrs: Mapping[str, Any], name: str, n: int, low: int) -> list[int]:
    v = attrs[name]
    if (not isinstance(v, list | tuple) or len(v) != n
            or not all(type(i) is int and i >= low for i in v)):
        raise TypeRuleError(f"{op}: attribute {name}={v!r} must be {n} integers >= {low}")
    return list(v)


def _flag(op: str, attrs: Mapping[str, Any], name: str) -> bool:
    v = attrs[name]
    if type(v) is not int or v not in (0, 1):
        raise TypeRuleError(f"{op}: attribute {name}={v!r} must be 0 or 1")
    return bool(v)


def window_dim(op: str, axis: str, size: Dim, k: int, s: int, d: int, lo: int, hi: int,
               ceil_mode: bool = False) -> Dim:
    """The number of windows along one spatial dim (raises where there is none)."""
    span = d * (k - 1) + 1
    n = static(size)
    if n is not None:
        room = n + lo + hi - span
        if room < 0:
            raise TypeRuleError(
                f"{op}: the {axis} window (kernel {k}, dilation {d}: {span} elements) is larger "
                f"than the padded input {axis} {n} + {lo} + {hi}")
        out = (room + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (out - 1) * s >= n + lo:
            out -= 1  # the last window would start in the bottom/right padding
        return Dim(out)
    room = size + (lo + hi - span)
    if not ceil_mode:
        return room // s + 1
    # The last window starts at most s - 1 past the floor mode's; it can start in the
    # bottom/right padding only if hi + s - 2 >= span - 1, and whether it does depends on
    # the size: a symbolic dim cannot tell.
    if hi + s - 2 >= span - 1 and s > 1:
        raise TypeRuleError(
            f"{op}: ceil_mode on the symbolic {axis} {size} with stride {s}, padding {hi} and "
            f"a {span}-element window: whether the last window is dropped depends on the size")
    return (room + (s - 1)) // s + 1


def _spatial(op: str, x: TypeLike, kernel: Sequence[int], attrs: Mapping[str, Any],
             ceil_mode: bool = False) -> tuple[Dim, Dim]:
    strides = _ints(op, attrs, "strides", 2, 1)
    dilations = _ints(op, attrs, "dilations", 2, 1)
    pads = _ints(op, attrs, "paddings", 4, 0)
    return (window_dim(op, "height", x.shape[1], kernel[0], strides[0], dilations[0], pads[0],
                       pads[1], ceil_mode),
            window_dim(op, "width", x.shape[2], kernel[1], strides[1], dilations[1], pads[2],
                       pads[3], ceil_mode))


def _rank4(op: str, name: str, t: TypeLike, layout: str) -> None:
    if len(t.shape) != 4:
        raise TypeRuleError(f"{op}: operand {name} {shape_text(t.shape)} must have rank 4 "
                            f"({layout})")


def _conv(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    """mo.conv2d (NHWC, RSCF) and mo.conv3d (NDHWC, QRSCF)."""
    x, f = operands
    device = same_device(op, ("x", "filter"), operands)
    dtype = floating(op, same_dtype(op, ("x", "filter"), operands))
    k = 3 if op == "mo.conv3d" else 2
    for name, t, layout in (("x", x, "NDHWC" if k == 3 else "NHWC"),
                            ("filter", f, "QRSCF" if k == 3 else "RSCF")):
        if len(t.shape) != k + 2:
            raise TypeRuleError(f"{op}: operand {name} {shape_text(t.shape)} must have rank "
                                f"{k + 2} ({layout})")
    groups = attrs["groups"]
    if type(groups) is not int or groups < 1:
        raise TypeRuleError(f"{op}: attribute groups={groups!r} must be an integer >= 1")
    fdims = [static(d) for d in f.shape]
    if None in fdims:
        raise TypeRuleError(f"{op}: operand filter {shape_text(f.shape)} must have static dims")
    *kernel, cg, fo = (int(d) for d in fdims)  # type: ignore[arg-type]
    c = static(x.shape[k + 1])
    if c is None or c != cg * groups:
        raise TypeRuleError(
            f"{op}: operand x {shape_text(x.shape)} has {x.shape[k + 1]} channels, the filter "
            f"{shape_text(f.shape)} with groups={groups} takes {cg} * {groups}")
    if fo % groups:
        raise TypeRuleError(f"{op}: groups={groups} does not divide the {fo} output channels "
                            f"of filter {shape_text(f.shape)}")
    strides = _ints(op, attrs, "strides", k, 1)
    dilations = _ints(op, attrs, "dilations", k, 1)
    pads = _ints(op, attrs, "paddings", 2 * k, 0)
    axes = ("depth", "height", "width")[3 - k:]
    dims = [window_dim(op, axes[i], x.shape[i + 1], kernel[i], strides[i], dilations[i],
                       pads[2 * i], pads[2 * i + 1]) for i in range(k)]
    return TensorSig(dtype, (x.shape[0], *dims, f.shape[k + 1]), device)


def transpose_dim(op: str, axis: str, size: Dim, k: int, s: int, d: int, lo: int,
                  hi: int) -> Dim:
    """Output length of a transposed convolution: ``(size - 1) * s - lo - hi + d * (k - 1) + 1``."""
    out = (size - 1) * s + (d * (k - 1) + 1 - lo - hi)
    n = static(out)
    if n is not None and n < 1 and static(size) != 0:
        raise TypeRuleError(f"{op}: paddings {lo} + {hi} leave no output {axis} (input {axis} "
                            f"{size}, stride {s}, kernel {k}, dilation {d}: {n})")
    return out


def _conv2d_transpose(op: str, operands: Sequence[TypeLike],
                      attrs: Mapping[str, Any]) -> TensorSig:
    x, f = operands
    device = same_device(op, ("x", "filter"), operands)
    dtype = floating(op, same_dtype(op, ("x", "filter"), operands))
    _rank4(op, "x", x, "NHWC")
    _rank4(op, "filter", f, "RSFC: kernel height, kernel width, out channels, in channels")
    r, s_, fo, ci = (static(d) for d in f.shape)
    if None in (r, s_, fo, ci):
        raise TypeRuleError(f"{op}: operand filter {shape_text(f.shape)} must have static dims")
    if static(x.shape[3]) != ci:
        raise TypeRuleError(f"{op}: operand x {shape_text(x.shape)} has {x.shape[3]} channels, "
                            f"the filter {shape_text(f.shape)} takes {ci}")
    strides = _ints(op, attrs, "strides", 2, 1)
    dilations = _ints(op, attrs, "dilations", 2, 1)
    pads = _ints(op, attrs, "paddings", 4, 0)
    oh = transpose_dim(op, "height", x.shape[1], r, strides[0], dilations[0], pads[0], pads[1])
    ow = transpose_dim(op, "width", x.shape[2], s_, strides[1], dilations[1], pads[2], pads[3])
    return TensorSig(dtype, (x.shape[0], oh, ow, f.shape[2]), device)


def _fold(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    (x,) = operands
    dtype = floating(op, x.dtype)
    if len(x.shape) != 3:
        raise TypeRuleError(f"{op}: operand x {shape_text(x.shape)} must have rank 3 "
                            "(N, C * kernel sizes, L)")
    out = _ints(op, attrs, "output_size", 2, 1)
    kernel = _ints(op, attrs, "kernel", 2, 1)
    blocks = _spatial(op, TensorSig(dtype, (x.shape[0], Dim(out[0]), Dim(out[1])), x.device),
                      kernel, attrs)
    ck = static(x.shape[1])
    if ck is None or ck % (kernel[0] * kernel[1]):
        raise TypeRuleError(f"{op}: dim 1 of operand x {shape_text(x.shape)} must be a static "
                            f"multiple of the kernel size {kernel[0]} * {kernel[1]}")
    if x.shape[2] != blocks[0] * blocks[1]:
        raise TypeRuleError(f"{op}: dim 2 of operand x {shape_text(x.shape)} must be the number "
                            f"of sliding blocks {blocks[0]} * {blocks[1]} of output_size {out}")
    return TensorSig(dtype, (x.shape[0], Dim(ck // (kernel[0] * kernel[1])), Dim(out[0]),
                             Dim(out[1])), x.device)


def _pool(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    (x,) = operands
    dtype = floating(op, x.dtype)
    _rank4(op, "x", x, "NHWC")
    kernel = _ints(op, attrs, "kernel", 2, 1)
    ceil_mode = _flag(op, attrs, "ceil_mode")
    if "count_boundary" in attrs:
        _flag(op, attrs, "count_boundary")
    oh, ow = _spatial(op, x, kernel, attrs, ceil_mode)
    return TensorSig(dtype, (x.shape[0], oh, ow, x.shape[3]), x.device)


# -- numpy references: one strided slice of the padded input per kernel tap ---------------------


def _taps(ctx: FoldContext, x: np.ndarray, kernel: Sequence[int], fill: float
          ) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
    """The padded input and, per tap (i, j), its [N, OH, OW, C] view."""
    (sh, sw), (dh, dw) = ctx.ints("strides"), ctx.ints("dilations")
    pt, pb, pl, pr = ctx.ints("paddings")
    oh, ow = ctx.shape[1], ctx.shape[2]
    # Extra room at the bottom/right: ceil mode's last window may reach past the padding.
    eh = max(0, (oh - 1) * sh + dh * (kernel[0] - 1) + 1 - (x.shape[1] + pt + pb))
    ew = max(0, (ow - 1) * sw + dw * (kernel[1] - 1) + 1 - (x.shape[2] + pl + pr))
    xp = np.pad(x, ((0, 0), (pt, pb + eh), (pl, pr + ew), (0, 0)), constant_values=fill)
    taps = []
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            v = xp[:, i * dh: i * dh + (oh - 1) * sh + 1: sh,
                   j * dw: j * dw + (ow - 1) * sw + 1: sw]
            taps.append((i, j, v))
    return xp, taps


def _conv3d_ref(ctx: FoldContext, x: np.ndarray, f: np.ndarray) -> np.ndarray:
    # Over the depth taps: each is a conv2d of the depth slices it reads.
    (sd, *sw), (dd, *dw) = ctx.ints("strides"), ctx.ints("dilations")
    pads = ctx.ints("paddings")
    od = ctx.shape[1]
    xp = np.pad(x.astype(np.float64), ((0, 0), (pads[0], pads[1]), (0, 0), (0, 0), (0, 0)))
    sub = FoldContext({**ctx.attributes, "strides": sw, "dilations": dw, "paddings": pads[2:]},
                      (x.shape[0] * od, *ctx.shape[2:]), ctx.dtype)
    out = np.zeros(sub.shape)
    for q in range(f.shape[0]):
        v = xp[:, q * dd: q * dd + (od - 1) * sd + 1: sd]
        out += _conv2d_ref(sub, v.reshape(-1, *v.shape[2:]), f[q])
    return out.reshape(ctx.shape)


def _conv2d_ref(ctx: FoldContext, x: np.ndarray, f: np.ndarray) -> np.ndarray:
    g = ctx.int("groups")
    r, s, cg, fo = f.shape
    _, taps = _taps(ctx, x.astype(np.float64), (r, s), 0.0)
    out = np.zeros(ctx.shape, np.float64)
    fg = fo // g
    for i, j, v in taps:
        for k in range(g):
            cols = slice(k * fg, (k + 1) * fg)
            out[..., cols] += v[..., k * cg:(k + 1) * cg] @ f[i, j, :, cols]
    return out


def _conv2d_transpose_ref(ctx: FoldContext, x: np.ndarray, f: np.ndarray) -> np.ndarray:
    # Scatter: input pixel (i, j) adds x[i, j] @ f[a, b].T at (i * s + a * d, j * s + b * d)
    # of the unpadded output, which the paddings then crop.
    (sh, sw), (dh, dw) = ctx.ints("strides"), ctx.ints("dilations")
    pt, pb, pl, pr = ctx.ints("paddings")
    n, h, w, _ = x.shape
    r, s, fo, _ = f.shape
    full = np.zeros((n, (h - 1) * sh + dh * (r - 1) + 1, (w - 1) * sw + dw * (s - 1) + 1, fo))
    for a in range(r):
        for b in range(s):
            full[:, a * dh: a * dh + (h - 1) * sh + 1: sh, b * dw: b * dw + (w - 1) * sw + 1: sw] \
                += x.astype(np.float64) @ f[a, b].T.astype(np.float64)
    return full[:, pt: full.shape[1] - pb, pl: full.shape[2] - pr]


def _fold_ref(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    (kh, kw), (sh, sw), (dh, dw) = ctx.ints("kernel"), ctx.ints("strides"), ctx.ints("dilations")
    pt, pb, pl, pr = ctx.ints("paddings")
    n, c, oh, ow = ctx.shape
    bh = (oh + pt + pb - dh * (kh - 1) - 1) // sh + 1
    bw = (ow + pl + pr - dw * (kw - 1) - 1) // sw + 1
    cols = x.astype(np.float64).reshape(n, c, kh, kw, bh, bw)
    out = np.zeros((n, c, oh + pt + pb, ow + pl + pr))
    for i in range(kh):
        for j in range(kw):
            out[:, :, i * dh: i * dh + (bh - 1) * sh + 1: sh,
                j * dw: j * dw + (bw - 1) * sw + 1: sw] += cols[:, :, i, j]
    return out[:, :, pt: pt + oh, pl: pl + ow]


def _max_pool_ref(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    _, taps = _taps(ctx, x, ctx.ints("kernel"), -np.inf)
    return np.maximum.reduce([v for _, _, v in taps])


def _avg_pool_ref(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    kernel = ctx.ints("kernel")
    pt, pb, pl, pr = ctx.ints("paddings")
    _, taps = _taps(ctx, x.astype(np.float64), kernel, 0.0)
    # Count what each tap sees: the input, and the padding too with count_boundary.
    ones = np.ones((1, x.shape[1], x.shape[2], 1))
    if ctx.int("count_boundary"):
        ones = np.pad(ones, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=1.0)
        pt = pb = pl = pr = 0
    sub = FoldContext({**ctx.attributes, "paddings": [pt, pb, pl, pr]}, ctx.shape, ctx.dtype)
    _, count = _taps(sub, ones, kernel, 0.0)
    return sum(v for _, _, v in taps) / sum(v for _, _, v in count)


# The numpy references of this family join the shared table (the constant folder's).
REFERENCES.update({"mo.conv2d": Folder(_conv2d_ref), "mo.max_pool2d": Folder(_max_pool_ref),
                   "mo.avg_pool2d": Folder(_avg_pool_ref),
                   "mo.conv2d_transpose": Folder(_conv2d_transpose_ref),
                   "mo.conv3d": Folder(_conv3d_ref), "mo.fold": Folder(_fold_ref)})


def defs() -> list[OpDef]:
    R = REFERENCES
    window = (AttrDef("strides", INTS), AttrDef("dilations", INTS), AttrDef("paddings", INTS))
    pool = (AttrDef("kernel", INTS), *window, AttrDef("ceil_mode", INT))
    return [
        OpDef("mo.conv2d", ("x", "filter"), (*window, AttrDef("groups", INT)), infer=_conv,
              reference=R["mo.conv2d"]),
        OpDef("mo.conv3d", ("x", "filter"), (*window, AttrDef("groups", INT)), infer=_conv,
              reference=R["mo.conv3d"]),
        OpDef("mo.conv2d_transpose", ("x", "filter"), window, infer=_conv2d_transpose,
              reference=R["mo.conv2d_transpose"]),
        OpDef("mo.fold", ("x",), (AttrDef("output_size", INTS), AttrDef("kernel", INTS),
                                  *window), infer=_fold, reference=R["mo.fold"]),
        OpDef("mo.max_pool2d", ("x",), pool, infer=_pool, reference=R["mo.max_pool2d"]),
        OpDef("mo.avg_pool2d", ("x",), (*pool, AttrDef("count_boundary", INT)), infer=_pool,
              reference=R["mo.avg_pool2d"]),
    ]
