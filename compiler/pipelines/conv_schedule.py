"""Schedules for linalg's convolution and pooling ops (MLIR-FACTS 7, probes conv/dwconv).

A 2-D conv is tiled to an output strip of ``wt`` pixels x ``ft`` channels with one filter
tap (kh, kw) and one input channel per step, then ``transform.structured.decompose`` turns the
tile into a 1-D conv (``conv_1d_nwc_wcf``, ``depthwise_conv_1d_nwc_wc``, ``pooling_nwc_*``)
that ``vectorize`` handles: the strip's accumulator stays in vector registers across the kh,
kw and channel loops (loop-invariant subset hoisting), and each step is ``wt`` broadcasts of
an input element, ``ft / lanes`` filter loads and ``wt * ft / lanes`` FMAs, as in the matmul's
register tile. (A chunk of 16 input channels per step, the probe's choice on Zen 4, was 25%
slower here: the [wt, 16] input tile must be transposed into broadcasts.) Only f32 ops
with static widths and channels are scheduled. A strip or channel tile that does not divide
its dim leaves a remainder tile, which is peeled into its own loop: every tile is static
(vectorizing a conv tile of dynamic size fails), so odd widths and channel counts stay vector
code. The channel tile of depthwise convolutions and pools is one vector (16 f32 with
AVX-512, 8 with AVX2) at most: a
``vector<48xf32>`` was legalized lane by lane, ~10x slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from mlir import ir
from mlir.dialects import linalg

from max.compiler.host_cpu import host
from max.compiler.pipelines import transform_script as ts

# Kinds: conv2d (loops n, oh, ow, f, kh, kw, c); depthwise conv and pools (n, oh, ow, c, kh, kw).
CONV_KINDS = {
    "linalg.conv_2d_nhwc_hwcf": "conv",
    "linalg.depthwise_conv_2d_nhwc_hwc": "window",
    "linalg.pooling_nhwc_max": "window",
    "linalg.pooling_nhwc_sum": "window",
    # The interior of a padded input (max.compiler.lowering.conv).
    "linalg.copy": "copy",
}
# One register block: all but 4 of the host's vector registers accumulate f32, 28 of the 32
# zmm with AVX-512 (MLIR-FACTS 7.1 used 16; more hid the FMA latency better here: 14 x 32 beat
# 8 x 32 and 4 x 64 on 3x3 convs by 10-20%), 12 of the 16 ymm with AVX2; the rest hold the
# filter vectors and a broadcast. _LANES: f32 per vector; a filter tile is two vectors wide
# at most (32 or 16 channels).
_LANES = host().f32_lanes
_ACC = (host().vector_registers - 4) * _LANES
_L1_SLICE = host().l1d_bytes * 2 // 3  # bytes of filter kept in L1 per channel chunk
# Accumulators a conv strip keeps at least, where a remainder strip allows it: each is one
# chain of dependent FMAs, and two FMA pipes of 4 cycles' latency need 8 in flight. On Zen 3
# (AVX2) 56 pixels in strips of 4 x 16 channels (8 accumulators, no remainder) ran at 68-81
# GF/s on one thread, in strips of 6 (12 accumulators, a remainder of 2) at 81-90; torch 87-95
# (peak 99). AVX-512's strips (14 x 32, 28 accumulators) are far above it.
_MIN_CHAINS = 10
# Marks the fill that starts a split window op's result (lowering.conv_padding.split_window):
# CSE must not merge it with an equal fill, and it goes on threads like the padded copies.
OWN_INIT = "mo.own_init"


def _static_f32(op: ir.Operation) -> bool:
    """f32 operands with static shapes, but for a symbolic batch and height (both tiled by 1)
    and, for convolutions and window ops, a symbolic width (strips of it, the remainder strip
    in one-pixel tiles): every tile is static. Channels and the filter are static."""
    dyn = ir.ShapedType.get_dynamic_size()
    symbolic_width = CONV_KINDS.get(op.name) in ("conv", "window")
    for i, v in enumerate(list(op.operands) + list(op.results)):
        t = v.type
        if not isinstance(t, ir.RankedTensorType):
            return False
        t = ir.RankedTensorType(t)
        if str(t.element_type) != "f32" or 0 in t.shape:
            return False
        if symbolic_width and i == 1:  # the filter or window: all static
            static = list(t.shape)
        elif symbolic_width and t.rank == 4:  # the input or result: [N, H, W, C]
            static = list(t.shape[3:])
        else:
            static = list(t.shape[2:])
        if dyn in static:
            return False
    return True


def _pow2_divisor(n: int, cap: int) -> int:
    """The largest power of two <= cap that divides n."""
    d = 1
    while d * 2 <= cap and n % (d * 2) == 0:
        d *= 2
    return d


class Levels(NamedTuple):
    """Tile sizes per level (outer first), and the loops of the innermost level to peel:
    their indices among its tiled loops, innermost first (peeling an outer loop clones the
    inner ones, whose handles then die)."""

    sizes: tuple[tuple[int, ...], ...]
    peel: tuple[int, ...] = ()
    interchange: tuple[int, ...] = ()  # loop order of the outer level, if not the dims'
    # The peel index of a symbolic width's strip loop: its remainder tiles (fewer pixels than
    # a strip, how many only known at run time) are tiled again by one pixel.
    symbolic_strip: int | None = None


def _strip(ow: int, most: int, least: int = 1) -> int:
    """Pixels per strip: the largest divisor of ``ow`` in [max(2/3 most, least), most] (a
    peeled remainder strip runs at a fraction of the speed: 12 + 4 on 28 pixels was 20% slower
    than 14 + 14), else ``most`` and a remainder (always, for a symbolic ``ow``)."""
    if ow < 0:
        return most
    most = max(1, min(ow, most))
    low = min(most, max(-(-2 * most // 3), least))
    return next((w for w in range(most, low - 1, -1) if ow % w == 0), most)


def _peeled(shape: Sequence[int], sizes: tuple[int, ...]) -> tuple[int, ...]:
    """The tiled loops among the result's dims (n, oh, ow, c: the first loops of every kind)
    whose static size the tile does not divide, as :attr:`Levels.peel` indices."""
    tiled = [i for i, t in enumerate(sizes) if t]
    rem = [i for i in tiled if i < len(shape) and (shape[i] % sizes[i] if shape[i] > 0
                                                   else i == 2 and sizes[i] > 1)]
    return tuple(sorted((tiled.index(i) for i in rem), reverse=True))


def _plan(*levels: tuple[int, ...], shape: Sequence[int],
          interchange: tuple[int, ...] = ()) -> Levels:
    inner = levels[-1]
    strip = None
    if shape[2] < 0 and inner[2] > 1:  # a symbolic width in strips: a remainder to re-tile
        strip = [i for i, t in enumerate(inner) if t].index(2)
    return Levels(tuple(levels), _peeled(shape, inner), interchange, strip)


def conv_tiles(op: ir.Operation) -> tuple[str, Levels] | None:
    """(kind, tile sizes per level) for a convolution or pooling op we schedule, else None.

    Strips along the width (and channel tiles of window ops) need not divide their dims: the
    remainder is peeled (:attr:`Levels.peel`), so every tile stays static.
    """
    kind = CONV_KINDS.get(op.name)
    if kind is None or not _static_f32(op):
        return None
    shape = ir.RankedTensorType(op.results[0].type).shape
    if kind == "copy":
        c = shape[-1]
        if len(shape) == 4 and c < 64:
            # Whole pixels per step (a 224x224x3 image copied 3 floats at a time cost more
            # than its conv): about 64 floats, the width remainder peeled.
            return kind, _plan((1, 1, min(shape[2], max(1, 64 // c)), c), shape=shape)
        return kind, _plan((*[1] * (len(shape) - 1), c if c <= 64 else _pow2_divisor(c, 64)),
                           shape=shape)
    if len(shape) != 4:
        return None
    _, _, ow, ch = shape
    if kind == "conv":
        # A register block of 14 pixels x 32 output channels: 32 (not the probe's 64) was
        # 20% faster on 128 channels (a smaller filter slice per step). A whole small F, else
        # a power of two up to 32 dividing it.
        fmax = 2 * _LANES
        ft = (ch if ch <= fmax and (ch & (ch - 1) == 0 or ch < _LANES)
              else _pow2_divisor(ch, fmax))
        vectors = -(-ft // _LANES)
        wt = _strip(ow, min(_ACC // max(ft, _LANES), 16), -(-_MIN_CHAINS // vectors))
        # Input channels in chunks whose filter slice (all taps x chunk x ft) fits in 32 KB
        # of L1 while the strips of a row stream past it; the whole 3x3 filter per strip
        # came from L2 (25% slower). A 1x1 conv keeps all its channels: longer runs per
        # accumulator load.
        r, s, c, _ = ir.RankedTensorType(op.operands[1].type).shape
        cc = 0
        if r * s * c * ft * 4 > _L1_SLICE and c % 16 == 0:  # chunks of 16 channels or more
            cc = 16
            while c % (cc * 2) == 0 and r * s * cc * 2 * ft * 4 <= _L1_SLICE:
                cc *= 2
        # A filter larger than (half) the output, as in the deep layers of a CNN (a 3x3x256x256
        # filter, 2.4 MB, for a 7x7 output): the F tile and channel chunk loops go outside
        # the rows, so that each filter slice is read from memory once, not once a row.
        width = ow if ow > 0 else 1 << 16  # a symbolic width: most likely a large image
        order = (3, 6, 0, 1, 2, 4, 5) if r * s * c * ch > max(shape[1], 1) * width * ch // 2 else ()
        return kind, _plan((1, 1, 0, ft if ft < ch else 0, 0, 0, cc), (0, 0, wt, 0, 1, 1, 1),
                           shape=shape, interchange=order)
    # Channels: one vector at a time, a remainder peeled, or all of fewer; strips of 6-8
    # pixels (MLIR-FACTS 7.4: 7 or 8 best; longer strips spill).
    return kind, _plan((1, 1, _strip(ow, 8), min(ch, _LANES), 1, 0), shape=shape)


def conv_schedule(handle: str, name: str, kind: str, plan: Levels, done: str) -> str:
    """Transform IR: tile ``handle`` level by level, peel the remainders of the innermost
    level's loops, decompose each tile to 1-D and mark it for vectorization (``done``
    formats the mark for a handle).

    Peeling consumes the loops, and the handle of the tile with them: the tiles (the full
    one and the remainders) are found again by a mark set before peeling. A copy's tile is
    vectorized at once: canonicalization would fold a copy on tensors away (into an
    ``insert_slice``, a scalar ``memref.copy`` after bufferization).
    """
    s = ""
    tiles, peel, interchange, strip = plan
    for level, sizes in enumerate(tiles):
        n = sum(1 for t in sizes if t)
        loops = ", ".join([ts.ANY] * n)
        tiled = f"%{name}" if level == len(tiles) - 1 else f"%{name}{level}"
        order = f" interchange = {list(interchange)}" if interchange and level == 0 else ""
        s += (f"    {tiled}, {tiled}l:{n} = transform.structured.tile_using_for {handle} "
              f"tile_sizes {list(sizes)}{order} : ({ts.ANY}) -> ({ts.ANY}, {loops})\n")
        handle = tiled
    tile = f"%{name}"
    if peel:
        mark = f"mo.ctile_{name}"
        s += f'    transform.annotate {tile} "{mark}" : {ts.ANY}\n'
        rest = f"mo.crest_{name}"
        s += _peel_loops(name, peel, strip, rest)
        if strip is not None:
            # The tiles in the symbolic width's remainder loop: one pixel a step. Tiling
            # keeps the mark on the new tiles.
            ones = [1 if i == 2 else 0 for i in range(len(tiles[-1]))]
            s += (f"    %{name}rl = transform.structured.match attributes{{{rest}}} in %root "
                  f": ({ts.ANY}) -> {ts.ANY}\n"
                  f"    %{name}rt = transform.structured.match attributes{{{mark}}} in "
                  f"%{name}rl : ({ts.ANY}) -> {ts.ANY}\n"
                  f"    transform.foreach %{name}rt : {ts.ANY} {{\n"
                  f"    ^bb0(%{name}rx: {ts.ANY}):\n"
                  + ts.tile(f"%{name}rx", f"{name}r1", ones) + "    }\n")
        tile = f"%{name}m"
        s += (f"    {tile} = transform.structured.match attributes{{{mark}}} in %root "
              f": ({ts.ANY}) -> {ts.ANY}\n")
    if kind == "copy":
        # Peeled, the remainder is static only after canonicalization: both tiles are
        # vectorized by the later stages (as copies, or as the memref.copy they fold to).
        return s + (done.format(tile) if peel else
                    f"    transform.structured.vectorize {tile} : {ts.ANY}\n")
    return (s + f"    %{name}d = transform.structured.decompose {tile} : ({ts.ANY}) -> {ts.ANY}\n"
            + done.format(f"%{name}d"))


def _peel_loops(name: str, peel: tuple[int, ...], tagged: int | None = None,
                tag: str = "") -> str:
    """Peels loops ``%{name}l#i``, each in its own suppressed sequence (a loop that has no
    remainder left after canonicalization cannot be peeled: nothing is lost); the remainder
    loop of loop ``tagged`` gets the attribute ``tag``."""
    return "".join(ts.peel(f"%{name}l#{i}", f"{name}p{i}", tag if i == tagged else "")
                   for i in peel)


def copy_thread_plan(op: ir.Operation, kind: str, n: int, min_elements: int
                     ) -> tuple[int, None, int, int] | None:
    """How the copy of a padded input's interior, or the :data:`OWN_INIT` fill of a split
    window op's result, goes on ``n`` threads (a ``cpu_threads`` plan: loops, no producer to
    fuse, the axis split, its tile size), or None: by images, else by rows, when it has
    ``min_elements`` at least. Serial, the copy was 7% of a 3x3 conv on two threads."""
    if kind != "copy" and OWN_INIT not in op.attributes:
        return None
    shape = ir.RankedTensorType(op.results[0].type).shape
    if len(shape) != 4 or any(d <= 0 for d in shape[1:]):
        return None
    axis = 0 if shape[0] >= n else 1
    if shape[axis] < n or max(shape[0], 1) * shape[1] * shape[2] * shape[3] < min_elements:
        return None
    return (4, None, axis, -(-shape[axis] // n))


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


# The largest copy (elements) that tiled_copies_to_linalg vectorizes as a whole: the padded
# interiors' tiles have at most 64 (the conv suite and the benchmark graphs).
MAX_TILE_COPY = 4096


def tiled_copies_to_linalg(module: ir.Module, tiled: str) -> int:
    """Static ``memref.copy`` ops inside loops -> ``linalg.copy`` marked ``tiled`` (stage 2).

    They are the tiles of a padded input's interior that canonicalization folded on tensors
    (see :func:`conv_schedule`); as ``linalg.copy`` on memrefs they are vectorized with the
    other static tiles, where a scalar copy loop cost more than the convolution itself.
    Only tile-sized copies (:data:`MAX_TILE_COPY`): one vector of a whole larger copy took
    minutes in LLVM and ran slowly (``tile`` of [512, 1024] by 4, a 2 MiB vector per copy);
    those stay ``memref.copy`` for the copy stages (``mo-copies-to-linalg`` and after).
    Returns how many.
    """
    copies: list[ir.Operation] = []

    def collect(op: ir.Operation) -> ir.WalkResult:
        if op.name == "memref.copy" and all(
                ir.MemRefType(v.type).has_static_shape for v in op.operands) and int(
                np.prod(ir.MemRefType(op.operands[0].type).shape)) <= MAX_TILE_COPY:
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


__all__ = ["CONV_KINDS", "MAX_TILE_COPY", "OWN_INIT", "Levels", "conv_macs", "conv_schedule",
           "conv_tiles", "copy_thread_plan", "tiled_copies_to_linalg"]
