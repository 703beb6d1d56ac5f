"""Panels for a weight whose column count N is not a multiple of the panel width P.

:mod:`matmul_pack` reads a load-time B in panels ``[N/P, K, P]`` only where P divides N;
otherwise every row of C took the small-M or strided-B tiles, which read B's rows N floats
apart. Such N are real: BERT's masked-LM head (30522), GPT-2's vocabulary (50257). One thread,
ms, against torch: ``[8, 768] @ [768, 30522]`` 30.1 (torch 12.3) where 30528 columns took
8.4; ``[4, 576] @ [576, 49153]`` 17.2 (11.7) where 49152 took 8.5.

Here such a matmul is split by columns: the first ``JP = N - r`` columns (``r = N mod P``) are a
panel matmul like any other, the last ``r`` a plain ``linalg.matmul`` ``[M, K] @ [K, r]``, each
writing its columns of C. The argument holds both in the same bytes, no padding: the panel
layouts of a ragged B are its ``J = JP / P`` panels followed by its last ``r`` columns as a
row-major ``[K, r]`` (``runtime/layouts``). Only C starting as a fill is split (the sums
:mod:`matmul_init` moves into C's start need whole panels); a bias after it is a pass of its
own.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, bufferization, linalg, memref, tensor

from max.compiler.lowering.builders import reassociation
from max.compiler.passes.ir_util import as_op

_DYN = ir.ShapedType.get_dynamic_size()


def splittable(mm: ir.Operation) -> bool:
    """Whether C of ``mm`` starts as a fill (the only start :func:`split_matmul` takes)."""
    fill = as_op(mm.operands[2].owner)
    return fill is not None and fill.name == "linalg.fill"


def _slice(x: ir.Value, offsets: list[int], sizes: list[int],
           dyn: list[ir.Value]) -> ir.Value:
    """``x[offsets : offsets + sizes]`` (static offsets, unit strides); ``dyn``: the values of
    the dynamic ``sizes``."""
    t = ir.RankedTensorType.get(sizes, ir.RankedTensorType(x.type).element_type)
    return tensor.ExtractSliceOp(t, x, [], dyn, [], offsets, sizes, [1] * len(sizes)).result


def _insert(part: ir.Value, into: ir.Value, offsets: list[int], dyn: list[ir.Value]) -> ir.Value:
    sizes = list(ir.RankedTensorType(part.type).shape)
    return tensor.InsertSliceOp(part, into, [], dyn, [], offsets, sizes,
                                [1] * len(sizes)).result


def _view(dest: ir.Value, col: int, cols: int, dyn: list[ir.Value]) -> ir.Value:
    """Columns ``[col, col + cols)`` of the row-major memref ``dest`` (rows ``dyn`` if
    symbolic)."""
    mt = ir.MemRefType(dest.type)
    m, n = mt.shape
    layout = ir.StridedLayoutAttr.get(col, [n, 1])
    t = ir.MemRefType.get([m, cols], mt.element_type, layout)
    return memref.SubViewOp(t, dest, [], dyn, [], [0, col], [m, cols], [1, 1]).result


def split_matmul(mm: ir.Operation, arg: ir.Value, k: int, n: int,
                 rows: ir.Value | None) -> ir.Value | None:
    """C of ``mm`` (``A @ B``, B the load-time argument ``arg`` in a ragged panel layout) as
    the panel matmul of its first columns and the plain matmul of the rest, built at the
    insertion point. ``rows``: A's row count where it is symbolic.

    Where C is only stored into an output, each part is stored into its columns of it (an
    empty tensor elimination does not see through slices and reshapes: C would be a buffer
    of its own, copied out) and None is returned, the store erased; else C."""
    from max.compiler.pipelines import matmul_pack as mp

    p = mp.PANEL
    r = n % p
    jp = n - r
    a = mm.operands[0]
    m = ir.RankedTensorType(a.type).shape[0]
    et = ir.RankedTensorType(a.type).element_type
    value = as_op(mm.operands[2].owner).operands[0]
    dyn = [rows] if rows is not None else []
    m_or_rows = rows if rows is not None else m
    flat = mp.collapse_to(arg, [k * n], [list(range(ir.RankedTensorType(arg.type).rank))])
    head = mp.expand_to(_slice(flat, [0], [k * jp], []), [jp // p, k, p], [[0, 1, 2]])
    tail = mp.expand_to(_slice(flat, [k * jp], [k * r], []), [k, r], [[0, 1]])
    store = mp.output_store(mm.results[0])
    if store is not None:
        c3 = mp.panel_matmul(a, head, linalg.fill(value, outs=[
            tensor.empty([m_or_rows, jp // p, p], et)]))
        rest = linalg.matmul(a, tail, outs=[linalg.fill(value, outs=[
            tensor.empty([m_or_rows, r], et)])])
        dest = store.operands[1]
        dest_dyn = [memref.dim(dest, arith.constant(ir.IndexType.get(), 0))] if dyn else []
        head_view = _view(dest, 0, jp, dest_dyn)
        head_t = ir.MemRefType.get([m, jp // p, p], et,
                                   ir.StridedLayoutAttr.get(0, [n, p, 1]))
        head_view = memref.expand_shape(head_t, head_view, reassociation([[0], [1, 2]]),
                                        dest_dyn, [m, jp // p, p])
        for part, view in ((c3, head_view), (rest, _view(dest, jp, r, dest_dyn))):
            bufferization.MaterializeInDestinationOp(None, part, view, restrict=True,
                                                     writable=True)
        store.erase()
        return None
    # Each part starts as a slice of C (empty), so that bufferization writes it in place.
    c = tensor.empty([m_or_rows, n], et)
    head_c = mp.expand_to(_slice(c, [0, 0], [m, jp], dyn), [m, jp // p, p], [[0], [1, 2]], dyn)
    c3 = mp.panel_matmul(a, head, linalg.fill(value, outs=[head_c]))
    c = _insert(mp.collapse_to(c3, [m, jp], [[0], [1, 2]]), c, [0, 0], dyn)
    c1 = linalg.fill(value, outs=[_slice(c, [0, jp], [m, r], dyn)])
    return _insert(linalg.matmul(a, tail, outs=[c1]), c, [0, jp], dyn)


__all__ = ["split_matmul", "splittable"]
