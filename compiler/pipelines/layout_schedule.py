"""Schedules for layout-bound linalg ops: transposes and reductions over outer axes.

:mod:`cpu_schedule` knows ops whose innermost loop walks every operand contiguously
(elementwise ops, last-axis reductions). Two shapes that models use do not fit it:

* ``transpose``: a parallel generic (a ``linalg.transpose``, generalized first) with an input
  whose last dim is walked by an outer loop. A ``[1, .., 64]`` tile would read that input with
  a stride, one scalar at a time. Instead the tile is a ``BLOCK x BLOCK`` square spanning the
  innermost loop and the loop that walks the input's last dim: the vectorizer reads it as
  ``BLOCK`` contiguous rows of the input, ``vector.transpose`` shuffles it in registers, and
  it is written as ``BLOCK`` contiguous rows of the output. A 16 x 16 f32 block is one 64-byte
  cache line per row on both sides, so every line is read and written whole, once.
* ``outer_reduction``: a reduction whose innermost loop is parallel (``sum(x, axis=0)``,
  softmax over a middle axis). Every loop is tiled by 1 but the innermost, tiled by ``VEC``:
  each step adds one contiguous ``VEC``-wide slice of the input into the same slice of the
  accumulator (vectors, never a strided scalar loop), and when the reduced loop ends up
  innermost the accumulator stays in registers (loop-invariant subset hoisting).

Permutes that keep the last dim in place (``[1, 128, 12, 32]`` by ``(0, 2, 1, 3)``) are plain
elementwise copies once generalized: :mod:`cpu_schedule` tiles them like any elementwise op.
Each tagged op carries its tile sizes (:data:`VSIZES`), which are also the vector sizes of the
masked vectorization of its remainder tiles (a true upper bound, as in cpu_schedule).
"""

from __future__ import annotations

from mlir import ir

from max.compiler.pipelines import transform_script as ts

BLOCK = 16  # transpose block: one 64-byte line of f32 per row
VEC = 64  # as cpu_schedule.VEC: 4 zmm of f32
VSIZES = "mo.vsizes"  # tile sizes of a tagged op, kept by its tiled clones
LAYOUT_KINDS = ("transpose", "outer_reduction")


def _maps(op: ir.Operation) -> list[ir.AffineMap]:
    return [ir.AffineMapAttr(a).value for a in ir.ArrayAttr(op.attributes["indexing_maps"])]


def _iterators(op: ir.Operation) -> list[str]:
    return [str(a) for a in ir.ArrayAttr(op.attributes["iterator_types"])]


def _dims(m: ir.AffineMap) -> list[int | None]:
    """The loop of each result of ``m`` (None for a constant: a broadcast size-1 dim)."""
    return [ir.AffineDimExpr(e).position if isinstance(e, ir.AffineDimExpr) else None
            for e in m.results]


def _transposed_loop(op: ir.Operation) -> int | None:
    """The loop walking an input's last dim, for the first input that the innermost loop
    walks along another dim (a strided read), else None."""
    maps = _maps(op)
    n_in = len(op.operands) - len(op.results)
    inner = len(_iterators(op)) - 1
    for m in maps[:n_in]:
        dims = _dims(m)
        if inner in dims and dims[-1] != inner and dims[-1] is not None:
            return dims[-1]
    return None


def classify(op: ir.Operation, identity_outputs: bool) -> str | None:
    """``transpose`` or ``outer_reduction`` for a generic cpu_schedule left alone, else None.

    The caller has checked the element types, the body and that every map is a projected
    permutation or a broadcast. ``identity_outputs``: each output map is the loop order.
    """
    iters = _iterators(op)
    rank = len(iters)
    if rank < 2:
        return None
    if all("parallel" in i for i in iters):
        if identity_outputs and _transposed_loop(op) is not None:
            return "transpose"
        return None
    # argmax (two results, a select body) has no combiner the vectorizer knows: left alone.
    if "parallel" not in iters[-1] or len(op.results) != 1:
        return None
    # Every operand walks the innermost (parallel) loop along its last dim, or not at all:
    # the VEC-wide slices are then contiguous.
    for m in _maps(op):
        dims = _dims(m)
        if rank - 1 in dims and dims[-1] != rank - 1:
            return None
    return "outer_reduction"


def tiles(op: ir.Operation, kind: str) -> tuple[int, ...]:
    """The tile sizes of a tagged op (one per loop)."""
    rank = len(_iterators(op))
    sizes = [1] * rank
    if kind == "transpose":
        sizes[rank - 1] = BLOCK
        sizes[_transposed_loop(op)] = BLOCK
    else:
        sizes[rank - 1] = VEC
    return tuple(sizes)


def tag(op: ir.Operation, kind: str) -> tuple[tuple[int, ...], ...]:
    """Records the op's tile sizes on it (see :data:`VSIZES`); returns them as cpu_schedule's
    ``Levels``."""
    sizes = tiles(op, kind)
    op.attributes[VSIZES] = ir.DenseI64ArrayAttr.get(list(sizes))
    return (sizes,)


def schedule(target: str, name: str, kind: str, levels: tuple[tuple[int, ...], ...],
             done: str) -> str:
    """Transform IR tiling ``target`` and peeling its wide loops; ``done`` marks the tile op
    (a format string taking its handle)."""
    sizes = list(levels[0])
    n = len(sizes)
    loops = ", ".join([ts.ANY] * n)
    s = (f"    %{name}, %{name}l:{n} = transform.structured.tile_using_for {target} "
         f"tile_sizes {sizes} : ({ts.ANY}) -> ({ts.ANY}, {loops})\n")
    s += done.format(f"%{name}")
    # Innermost first: peeling an outer loop clones the inner one, invalidating its handle.
    for i in reversed(range(n)):
        if sizes[i] > 1:
            s += ts.peel(f"%{name}l#{i}", f"{name}p{i}")
    return s


def vector_sizes(op: ir.Operation) -> list[int] | None:
    """The masked vector sizes of a tiled clone of a tagged op, or None if it is not one."""
    if VSIZES not in op.attributes:
        return None
    return list(ir.DenseI64ArrayAttr(op.attributes[VSIZES]))


GENERALIZE = (
    ts.HEADER +
    f'  %t = transform.structured.match ops{{["linalg.transpose"]}} in %root : '
    f"({ts.ANY}) -> {ts.ANY}\n"
    f"  %g = transform.structured.generalize %t : ({ts.ANY}) -> {ts.ANY}\n"
    + ts.FOOTER)

# Before cpu_schedule's vector lowering: the transposed reads become row reads and a
# vector.transpose (unit dims dropped first), which 16x16 shuffles lower (eltwise lowering
# extracts and inserts each element).
PREPARE_VECTORS = (
    ts.HEADER +
    f'  %f = transform.structured.match ops{{["func.func"]}} in %root : ({ts.ANY}) -> {ts.ANY}\n'
    "  transform.apply_patterns to %f {\n"
    "    transform.apply_patterns.vector.transfer_permutation_patterns\n"
    "    transform.apply_patterns.vector.cast_away_vector_leading_one_dim\n"
    f"  }} : {ts.ANY}\n"
    "  transform.apply_patterns to %f {\n"
    '    transform.apply_patterns.vector.lower_transpose lowering_strategy = "shuffle_16x16"\n'
    f"  }} : {ts.ANY}\n"
    + ts.FOOTER)


def thread_plan(op: ir.Operation, kind: str, sizes: list[int],
                n: int) -> tuple[int, int | None, int, int] | None:
    """cpu_threads' plan for a large tagged op: split its outermost parallel loop over ``n``
    threads (never a reduced loop: partial sums would race), or None. ``sizes``: the static
    loop sizes (dynamic where unknown)."""
    iters = _iterators(op)
    dyn = ir.ShapedType.get_dynamic_size()
    for axis, it in enumerate(iters):
        if "parallel" in it and sizes[axis] != 1:
            break
    else:
        return None
    if kind == "outer_reduction":
        if axis == len(iters) - 1:
            # Only the vector loop is parallel: equal parts that are whole vectors.
            if sizes[axis] == dyn or sizes[axis] < n * VEC:
                return None
            part = -(-sizes[axis] // (n * VEC)) * VEC
            return (len(iters), len(op.operands) - 1, axis, part)
        return (len(iters), len(op.operands) - 1, axis, 0)
    return (len(iters), None, axis, 0)


__all__ = ["BLOCK", "LAYOUT_KINDS", "PREPARE_VECTORS", "VSIZES", "classify", "schedule", "tag",
           "thread_plan", "tiles", "vector_sizes"]
