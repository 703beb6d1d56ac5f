"""Schedules for linalg's convolution and pooling ops (MLIR-FACTS 7, probes conv/dwconv).

A 2-D conv is tiled to an output strip of ``wt`` pixels x ``ft`` channels with one filter
tap (kh, kw) and one input channel per step, then ``transform.structured.decompose`` turns the
tile into a 1-D conv (``conv_1d_nwc_wcf``, ``depthwise_conv_1d_nwc_wc``, ``pooling_nwc_*``)
that ``vectorize`` handles: the strip's accumulator stays in vector registers across the kh,
kw and channel loops (loop-invariant subset hoisting), and each step is ``wt`` broadcasts of
an input element, ``ft / 16`` filter loads and ``wt * ft / 16`` FMAs, as in the matmul's
register tile. (A chunk of 16 input channels per step, the probe's choice on Zen 4, was 25%
slower here: the [wt, 16] input tile must be transposed into broadcasts.) Only f32 ops
with static shapes are scheduled, and the tile sizes divide the dims, so each tile is static
(vectorizing a conv tile with a remainder fails). The channel tile of depthwise convolutions
and pools is a power of two: a ``vector<48xf32>`` is legalized lane by lane, ~10x slower.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import linalg

# Kinds: conv2d (loops n, oh, ow, f, kh, kw, c); depthwise conv and pools (n, oh, ow, c, kh, kw).
CONV_KINDS = {
    "linalg.conv_2d_nhwc_hwcf": "conv",
    "linalg.depthwise_conv_2d_nhwc_hwc": "window",
    "linalg.pooling_nhwc_max": "window",
    "linalg.pooling_nhwc_sum": "window",
    # The interior of a padded input (max.compiler.lowering.conv).
    "linalg.copy": "copy",
}
_ANY = "!transform.any_op"
# One register block: 16 zmm accumulators of f32 (4 pixels x 64 channels, MLIR-FACTS 7.1).
_ACC = 256


def _static_f32(op: ir.Operation) -> bool:
    """f32 operands with static shapes, but for a symbolic batch and height (both tiled by 1:
    the tiles are static; the strips along the width must divide it)."""
    dyn = ir.ShapedType.get_dynamic_size()
    for v in list(op.operands) + list(op.results):
        t = v.type
        if not isinstance(t, ir.RankedTensorType):
            return False
        t = ir.RankedTensorType(t)
        if str(t.element_type) != "f32" or 0 in t.shape or dyn in t.shape[2:]:
            return False
    return True


def _pow2_divisor(n: int, cap: int) -> int:
    """The largest power of two <= cap that divides n."""
    d = 1
    while d * 2 <= cap and n % (d * 2) == 0:
        d *= 2
    return d


def _divisor(n: int, options: tuple[int, ...]) -> int:
    return next(o for o in options if n % o == 0)


Levels = tuple[tuple[int, ...], ...]  # tile sizes, outer level first


def conv_tiles(op: ir.Operation) -> tuple[str, Levels] | None:
    """(kind, tile sizes per level) for a convolution or pooling op we schedule, else None."""
    kind = CONV_KINDS.get(op.name)
    if kind is None or not _static_f32(op):
        return None
    shape = ir.RankedTensorType(op.results[0].type).shape
    if kind == "copy":
        c = shape[-1]
        return kind, ((*[1] * (len(shape) - 1), c if c <= 64 else _pow2_divisor(c, 64)),)
    if len(shape) != 4:
        return None
    _, _, ow, ch = shape
    if kind == "conv":
        # Output channels: a whole small F, else a power of two up to 64 dividing it.
        ft = ch if ch <= 64 and (ch & (ch - 1) == 0 or ch < 16) else _pow2_divisor(ch, 64)
        wt = _divisor(ow, tuple(w for w in (4, 8, 2, 1) if w * ft <= _ACC) or (1,))
        # Per output row, 16 input channels at a time: their filter slice (36 KB for 3x3 taps
        # and 64 outputs) stays in L1 while the strips of the row stream past it; the whole
        # filter per strip came from L2 (25% slower).
        c = ir.RankedTensorType(op.operands[0].type).shape[3]
        cc = 16 if c % 16 == 0 and c > 16 else 0
        return kind, ((1, 1, 0, 0, 0, 0, cc), (0, 0, wt, ft, 1, 1, 1))
    ct = ch if ch < 16 and ch & (ch - 1) == 0 else _pow2_divisor(ch, 16)
    wt = _divisor(ow, (8, 7, 4, 2, 1))
    return kind, ((1, 1, wt, ct, 1, 0),)


def conv_schedule(handle: str, name: str, kind: str, tiles: Levels, done: str) -> str:
    """Transform IR: tile ``handle`` level by level, decompose the tile to 1-D, mark it for
    vectorization (``done`` formats the mark for a handle).

    A copy's tile is vectorized at once: canonicalization would fold a copy on tensors away
    (into an ``insert_slice``, a scalar ``memref.copy`` after bufferization).
    """
    s = ""
    for level, sizes in enumerate(tiles):
        n = sum(1 for t in sizes if t)
        loops = ", ".join([_ANY] * n)
        tiled = f"%{name}" if level == len(tiles) - 1 else f"%{name}{level}"
        s += (f"    {tiled}, {tiled}l:{n} = transform.structured.tile_using_for {handle} "
              f"tile_sizes {list(sizes)} : ({_ANY}) -> ({_ANY}, {loops})\n")
        handle = tiled
    if kind == "copy":
        return s + f"    transform.structured.vectorize %{name} : {_ANY}\n"
    return (s + f"    %{name}d = transform.structured.decompose %{name} : ({_ANY}) -> {_ANY}\n"
            + done.format(f"%{name}d"))


def conv_macs(op: ir.Operation) -> int:
    """Multiply-adds (or compares) of a static convolution or pooling op."""
    out = ir.RankedTensorType(op.results[0].type).shape
    window = ir.RankedTensorType(op.operands[1].type).shape
    macs = 1
    for d in list(out) + list(window[:2]):
        macs *= max(d, 1)  # a symbolic batch or height counts as 1
    if op.name == "linalg.conv_2d_nhwc_hwcf":
        macs *= window[2]
    return macs


def tiled_copies_to_linalg(module: ir.Module, tiled: str) -> int:
    """Static ``memref.copy`` ops inside loops -> ``linalg.copy`` marked ``tiled`` (stage 2).

    They are the tiles of a padded input's interior that canonicalization folded on tensors
    (see :func:`conv_schedule`); as ``linalg.copy`` on memrefs they are vectorized with the
    other static tiles, where a scalar copy loop cost more than the convolution itself.
    Returns how many.
    """
    copies: list[ir.Operation] = []

    def collect(op: ir.Operation) -> ir.WalkResult:
        if op.name == "memref.copy" and all(
                ir.MemRefType(v.type).has_static_shape for v in op.operands):
            parent = op.parent
            while parent is not None and parent.name not in ("scf.for", "func.func"):
                parent = parent.parent
            if parent is not None and parent.name == "scf.for":
                copies.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(collect)
    for op in copies:
        with ir.InsertionPoint(op), op.location:
            new = linalg.copy(op.operands[0], outs=[op.operands[1]])
        new.owner.attributes[tiled] = ir.UnitAttr.get()
        op.erase()
    return len(copies)


__all__ = ["CONV_KINDS", "conv_macs", "conv_schedule", "conv_tiles", "tiled_copies_to_linalg"]
