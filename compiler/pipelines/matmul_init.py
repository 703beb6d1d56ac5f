"""Sums after a linear layer's matmul start its accumulator instead: ``x @ W + b`` (and
``x @ W + b + residual``) as one matmul whose C starts at ``b`` (``+ residual``), not at zero.

A matmul against a weight stored in panels (:mod:`matmul_pack`) is no epilogue group: a
bias add after it was an elementwise pass of its own over C, which reads C back and writes
it again ([1, 128, 384] @ [384, 384] + b: 12 us of 187; MiniLM's five adds a layer after its
projections, about 0.5 ms of each layer's 16 at 8 x 128 tokens). The matmul's zero fill also
writes all of C, so writing ``b`` there instead costs the same, and the add is gone.

:func:`sum_into_inits` (in ``schedule_tensors``, before :func:`matmul_pack.rewrite`) takes an
elementwise generic ``g`` that reads the whole result C of a matmul against a load-time weight
(that :func:`matmul_pack.eligible` packs) only to add it to the rest of what ``g`` yields:
C's block argument has one use, an ``addf``, and from there only ``addf`` ops, each used once,
lead to the yield. Then ``g`` yields ``C + rest``, and ``rest`` (``g``'s body without C, over
``g``'s other operands) becomes a generic ``h`` that the matmul accumulates onto. ``h`` is
built over ``[rows, N / P, P]`` (the panel matmul's view of C) so that the panel matmul's
thread split fuses it into each thread's rows, as it did the zero fill. The float sum is
reassociated: ``(b + r) + x @ W`` instead of ``(x @ W + b) + r``.
"""

from __future__ import annotations

from collections.abc import Callable

from mlir import ir
from mlir.dialects import arith, tensor

from max.compiler.lowering.builders import PARALLEL, generic
from max.compiler.passes.ir_util import as_op
from max.compiler.pipelines import arg_layouts, matmul_pack
from max.compiler.pipelines.matmul_schedule import (body_reads_output_or_index,
                                                   matmul_operand, used_only_by)

_DYN = ir.ShapedType.get_dynamic_size()
# On ``h``: the panel matmul's thread split fuses it into each thread's part (as it did the
# zero fill), so it is never split over threads by itself.
INIT = "mo.mm_init"


def sum_into_inits(module: ir.Module, classify: Callable[[ir.Operation], str | None]) -> int:
    """Rewrites each such matmul and sum (see the module doc); returns how many."""
    return sum(1 for g, args in arg_layouts.top_level_ops(module)
               if g.name == "linalg.generic" and _rewrite(g, classify, args))


def _rewrite(g: ir.Operation, classify, args: dict[int, str]) -> bool:
    if classify(g) != "elementwise" or len(g.results) != 1 or body_reads_output_or_index(g):
        return False
    if str(ir.RankedTensorType(g.results[0].type).element_type) != "f32":
        return False
    maps = [ir.AffineMapAttr(a).value for a in ir.ArrayAttr(g.attributes["indexing_maps"])]
    found = matmul_operand(g, maps)
    if found is None:
        return False
    p, mm = found
    if classify(mm) != "matmul" or arg_layouts.source(mm.operands[1], args) is None:
        return False
    if not matmul_pack.eligible(mm, prepacked=True):
        return False
    fill = as_op(mm.operands[2].owner)
    if fill is None or fill.name != "linalg.fill" or not used_only_by(fill.results[0], mm):
        return False
    if not _is_zero(fill.operands[0]):
        return False
    block = g.regions[0].blocks[0]
    first = _summand_of_yield(block, block.arguments[p])
    if first is None:
        return False
    ins = list(g.operands)[:-1]
    new_maps = panel_maps(g, p, maps)
    if new_maps is None:
        return False
    with ir.InsertionPoint(g), g.location:
        h3 = _init_generic(g, p, mm, ins, new_maps, first)
        m_t = ir.RankedTensorType(mm.results[0].type)
        init = tensor.collapse_shape(ir.RankedTensorType.get(m_t.shape, m_t.element_type), h3,
                                     [[0], [1, 2]])
    # The matmul (and the reshape of its rows back to g's shape) move to after its new init.
    product = g.operands[p]
    mm.operands[2] = init
    mm.move_before(g)
    reshape = as_op(product.owner)
    if reshape is not None and reshape != mm:
        reshape.move_before(g)
    g.results[0].replace_all_uses_with(product)
    g.erase()
    fill.erase()
    return True


def _is_zero(v: ir.Value) -> bool:
    op = as_op(v.owner)
    if op is None or op.name != "arith.constant":
        return False
    attr = op.attributes["value"]
    return isinstance(attr, ir.FloatAttr) and ir.FloatAttr(attr).value == 0.0


def _summand_of_yield(block: ir.Block, c: ir.Value) -> ir.Operation | None:
    """The ``addf`` that adds ``c`` where the yield is ``c`` plus the rest (see the module
    doc), else None."""
    uses = list(c.uses)
    if len(uses) != 1:
        return None
    first = as_op(uses[0].owner)
    op = first
    while op is not None and op.name == "arith.addf":
        if "fastmath" in op.attributes and "none" not in str(op.attributes["fastmath"]):
            return None
        next_uses = list(op.results[0].uses)
        if len(next_uses) != 1:
            return None
        op = as_op(next_uses[0].owner)
    return first if op is not None and op.name == "linalg.yield" else None


def panel_map(m: ir.AffineMap, rank: int, t: ir.RankedTensorType) -> ir.AffineMap | None:
    """``m`` over the loops (rows, J, P), for an operand read only along the last loop (its
    last dim, a bias ``[N]`` viewed as ``[J, P]``) and constants; else None."""
    exprs: list[ir.AffineExpr] = []
    results = list(m.results)
    for i, e in enumerate(results):
        if isinstance(e, ir.AffineConstantExpr):
            exprs.append(e)
        elif (isinstance(e, ir.AffineDimExpr) and ir.AffineDimExpr(e).position == rank - 1
              and i == len(results) - 1 and t.shape[-1] != _DYN):
            exprs += [ir.AffineDimExpr.get(1), ir.AffineDimExpr.get(2)]
        else:
            return None
    return ir.AffineMap.get(3, 0, exprs)


def panel_maps(g: ir.Operation, p: int, maps: list[ir.AffineMap]) -> list[ir.AffineMap | None] | None:
    """The maps of ``g``'s inputs but ``p`` over (rows, J, P): None for a whole tensor (viewed
    as C's ``[rows, J, P]``), :func:`panel_map` for the rest; None where one has neither."""
    rank = len(maps[-1].results)
    new_maps: list[ir.AffineMap | None] = []
    for i, v in enumerate(list(g.operands)[:len(maps) - 1]):
        if i == p:
            continue
        if maps[i] == ir.AffineMap.get_identity(rank):
            new_maps.append(None)
        else:
            m = panel_map(maps[i], rank, ir.RankedTensorType(v.type))
            if m is None:
                return None
            new_maps.append(m)
    return new_maps


def panel_rows(mm: ir.Operation) -> tuple[int, ir.Value | int, int]:
    """(static rows or dynamic, rows as a value where dynamic, J) of a matmul whose C is
    viewed as ``[rows, J, P]``; ``mm``: the matmul or its panel generic (A is operand 0)."""
    a = mm.operands[0]
    rows_static = ir.RankedTensorType(a.type).shape[0]
    n = ir.RankedTensorType(mm.results[0].type).shape[-1]
    if ir.RankedTensorType(mm.results[0].type).rank == 3:  # already [rows, J, P]
        n *= ir.RankedTensorType(mm.results[0].type).shape[1]
    rows = (rows_static if rows_static != _DYN
            else tensor.dim(a, arith.constant(ir.IndexType.get(), 0)))
    return rows_static, rows, n // matmul_pack.PANEL


def panel_operands(others: list[ir.Value], new_maps: list[ir.AffineMap | None],
                   rows_static: int, rows: ir.Value | int, j: int
                   ) -> tuple[list[ir.Value], list[ir.AffineMap]]:
    """``others`` viewed over (rows, J, P), as :func:`panel_maps` gave their maps."""
    index = ir.IndexType.get()
    panel = matmul_pack.PANEL
    shape3 = [rows_static, j, panel]
    shape3_values = None
    operands, maps = [], []
    for v, m in zip(others, new_maps, strict=True):
        t = ir.RankedTensorType(v.type)
        if m is None:  # the whole tensor, viewed as C's [rows, J, P]
            if shape3_values is None:
                shape3_values = tensor.from_elements(
                    ir.RankedTensorType.get([3], index),
                    [rows if isinstance(rows, ir.Value) else arith.constant(index, rows),
                     arith.constant(index, j), arith.constant(index, panel)])
            operands.append(tensor.reshape(ir.RankedTensorType.get(shape3, t.element_type), v,
                                           shape3_values))
            maps.append(ir.AffineMap.get_identity(3))
        else:  # its last dim [N] as [J, P]
            shape = list(t.shape[:-1]) + [j, panel]
            dyn = [tensor.dim(v, arith.constant(index, d)) for d, s in enumerate(t.shape[:-1])
                   if s == _DYN]
            groups = [[d] for d in range(t.rank - 1)] + [[t.rank - 1, t.rank]]
            operands.append(tensor.expand_shape(ir.RankedTensorType.get(shape, t.element_type),
                                                v, groups, dyn, shape))
            maps.append(m)
    return operands, maps


def clone_body(old_block: ir.Block, mapping: dict,
               skip: tuple[ir.Operation, ir.Value] | None = None) -> ir.Value:
    """Clones the ops of a generic's body at the insertion point, its block arguments (and
    whatever else) replaced as ``mapping`` says; returns what it yields. ``skip``: (an
    ``addf`` of C and the rest, C's block argument): the sum replaced by the rest."""
    for child in old_block.operations:
        op = child.operation
        if op.name == "linalg.yield":
            return mapping.get(op.operands[0], op.operands[0])
        if skip is not None and op == skip[0]:  # c + r (or r + c): r
            c_arg = skip[1]
            rest = op.operands[1] if op.operands[0] == c_arg else op.operands[0]
            mapping[op.results[0]] = mapping.get(rest, rest)
            continue
        clone = op.clone()
        for idx, v in enumerate(list(clone.operands)):
            if v in mapping:
                clone.operands[idx] = mapping[v]
        for old_r, new_r in zip(op.results, clone.results):
            mapping[old_r] = new_r
    raise ValueError("a linalg body without a yield")


def _init_generic(g: ir.Operation, p: int, mm: ir.Operation, ins: list[ir.Value],
                  new_maps: list[ir.AffineMap | None], first: ir.Operation) -> ir.Value:
    """``h``: ``g``'s body without the matmul's result, over [rows, J, P]."""
    rows_static, rows, j = panel_rows(mm)
    others = [v for i, v in enumerate(ins) if i != p]
    operands, maps = panel_operands(others, new_maps, rows_static, rows, j)
    empty = tensor.empty([rows, j, matmul_pack.PANEL], ir.F32Type.get())
    old_block = g.regions[0].blocks[0]
    kept = [arg for i, arg in enumerate(list(old_block.arguments)[:-1]) if i != p]

    def body(*new_args: ir.Value) -> ir.Value:
        return clone_body(old_block, dict(zip(kept, new_args)),
                          skip=(first, old_block.arguments[p]))

    h = generic(operands, [empty], maps + [ir.AffineMap.get_identity(3)], [PARALLEL] * 3, body)
    as_op(h[0].owner).attributes[INIT] = ir.UnitAttr.get()
    return h[0]


__all__ = ["INIT", "clone_body", "panel_maps", "panel_operands", "panel_rows",
           "sum_into_inits"]
