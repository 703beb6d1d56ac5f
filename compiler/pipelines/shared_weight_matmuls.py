"""``x @ W.T`` against a weight that another op reads too (a tied embedding: the token
embedding's gather and the output head) as dot products of W's rows, not a transpose of W per
call.

A load-time argument read only by a transpose is stored transposed once (``arg_layouts``);
one with other readers is used as given, so ``x @ W.T`` transposed all of W at every call
before the matmul: SmolLM2's head (``[1, 576] @ W.T``, W ``[49152, 576]``) 43.6 ms on one
thread, torch 4.2. Each output ``C[m, n]`` is the dot product of A's row m and W's row n, both
contiguous: a ``linalg.generic`` reducing over k, which the row-reduction schedule vectorizes
along k (one horizontal sum per output), looping over W's rows outside A's so that a W row
is read from memory once for all of A's rows: 3.7 ms (4 rows: 7.2, torch 8.6). Only for a few
static rows (:data:`MAX_ROWS`): each output's horizontal sum and A's rows read again for every
W row make it slower than the transpose and a panel matmul from a few dozen rows on.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith

from max.compiler.lowering.builders import PARALLEL, REDUCTION, generic
from max.compiler.passes.ir_util import as_op
from max.compiler.pipelines.arg_layouts import load_time_key, top_level_ops


# Up to this many (static) rows: the dot products cost about 2 ms a row against SmolLM2's
# [49152, 576] head on one thread, the transpose 40 ms once and the matmul 0.6 ms a row
# (128 rows: 263 ms against 118).
MAX_ROWS = 16


def row_dot_matmuls(module: ir.Module) -> int:
    """Rewrites each f32 ``linalg.matmul(A, transpose(W))`` of at most :data:`MAX_ROWS` static
    rows, W a load-time argument still transposed per call (see the module doc), as the
    row-dot generic; returns how many."""
    count = 0
    for mm, args in top_level_ops(module):
        if mm.name != "linalg.matmul" or not args:
            continue
        t = as_op(mm.operands[1].owner)
        if (t is None or t.name != "linalg.transpose"
                or list(ir.DenseI64ArrayAttr(t.attributes["permutation"])) != [1, 0]
                or len(list(t.results[0].uses)) != 1
                or load_time_key(t.operands[0], args) is None):
            continue
        if any(str(ir.RankedTensorType(v.type).element_type) != "f32"
               for v in (mm.operands[0], t.operands[0], mm.results[0])):
            continue
        if not 0 < ir.RankedTensorType(mm.operands[0].type).shape[0] <= MAX_ROWS:
            continue  # (symbolic rows too: a prompt's could be many)
        d = [ir.AffineDimExpr.get(i) for i in range(3)]  # (n, m, k): W's rows outermost
        maps = [ir.AffineMap.get(3, 0, [d[1], d[2]]), ir.AffineMap.get(3, 0, [d[0], d[2]]),
                ir.AffineMap.get(3, 0, [d[1], d[0]])]
        with ir.InsertionPoint(mm), mm.location:
            c = generic([mm.operands[0], t.operands[0]], [mm.operands[2]], maps,
                        [PARALLEL, PARALLEL, REDUCTION],
                        lambda a, w, acc: arith.addf(acc, arith.mulf(a, w)))[0]
        mm.results[0].replace_all_uses_with(c)
        mm.erase()
        init = as_op(t.operands[1].owner)
        t.erase()
        if init is not None and init.name == "tensor.empty" and not list(init.results[0].uses):
            init.erase()
        count += 1
    return count


__all__ = ["MAX_ROWS", "row_dot_matmuls"]
