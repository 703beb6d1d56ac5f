"""Lowering of control flow: ``mo.cond`` -> ``scf.if``, ``mo.while`` -> ``scf.while``,
``mo.call`` inline.

Each body (a subgraph function named by a symbol attribute) is lowered in place, inside the
region, with its arguments mapped to the op's lowered operands, so nested control flow and
every op rule work unchanged, and the rest of the pipeline (bufferization of scf, the entry
ABI) sees one function. Dim values computed inside a region are dropped from the cache
afterwards (they do not dominate what follows). Ops with runtime checks inside a body are
refused: their flags would be defined inside the region, and the checks buffer is written
once at the end of the graph.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from mlir import ir
from mlir.dialects import scf, tensor

from max.compiler.lowering.body import coerce, lower_block
from max.compiler.lowering.context import LoweringContext, builtin_tensor_type, to_i1
from max.compiler.lowering.registry import lowering


def _callee(ctx: LoweringContext, attr: str) -> ir.Block:
    """The body block of the subgraph function that attribute ``attr`` names."""
    name = ir.FlatSymbolRefAttr(ctx.attr(attr)).value
    module = ctx.op.parent
    while module is not None and module.name != "builtin.module":
        module = module.parent
    if module is not None:
        for op in module.regions[0].blocks[0].operations:
            op = op.operation
            if op.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == name:
                return op.regions[0].blocks[0]
    raise ctx.error(f"{attr} @{name}: no such function")


@contextmanager
def _region_scope(ctx: LoweringContext) -> Iterator[None]:
    """Keeps dims computed inside a region out of the function's cache; refuses checks."""
    state = ctx.fn
    dims, checks = dict(state._dims), len(state.checks)
    try:
        yield
    finally:
        state._dims = dims
    if len(state.checks) != checks:
        raise ctx.error("ops with runtime checks (gather, slice of a symbolic dim, ...) are not "
                        "supported inside control-flow bodies")


def _inline(ctx: LoweringContext, attr: str, args: Sequence[ir.Value],
            want: Sequence[ir.Type]) -> list[ir.Value]:
    """Lowers the body named by ``attr`` at the insertion point on ``args``; its results
    cast to ``want`` (a rule may know static dims the loop types leave dynamic)."""
    block = _callee(ctx, attr)
    values = dict(zip(block.arguments, args, strict=True))
    out = lower_block(block, values, ctx.fn, f"{ctx.name} body {attr}")
    return [coerce(v, ir.RankedTensorType(t), ctx) for v, t in zip(out, want, strict=True)]


def _scalar_i1(v: ir.Value) -> ir.Value:
    """A lowered bool scalar tensor (``tensor<i8>``) as an i1."""
    return to_i1(tensor.extract(v, []))


@lowering("mo.cond")
def lower_cond(ctx: LoweringContext) -> list[ir.Value]:
    types = [builtin_tensor_type(t) for t in ctx.result_types]
    pred, args = ctx.operands[0], ctx.operands[1:]
    if_op = scf.IfOp(_scalar_i1(pred), types, has_else=True)
    for block, attr in ((if_op.then_block, "then_fn"), (if_op.else_block, "else_fn")):
        with ir.InsertionPoint(block), _region_scope(ctx):
            scf.YieldOp(_inline(ctx, attr, args, types))
    return list(if_op.results)


@lowering("mo.while")
def lower_while(ctx: LoweringContext) -> list[ir.Value]:
    k = ctx.int_attr("num_carried")
    types = [builtin_tensor_type(t) for t in ctx.result_types]
    carried, invariant = ctx.operands[:k], list(ctx.operands[k:])
    while_op = scf.WhileOp(types, [coerce(v, t, ctx) for v, t in zip(carried, types)])
    before = while_op.before.blocks.append(*types)
    after = while_op.after.blocks.append(*types)
    bool_type = ir.RankedTensorType.get([], ir.IntegerType.get_signless(8))
    with ir.InsertionPoint(before), _region_scope(ctx):
        (flag,) = _inline(ctx, "pred_fn", [*before.arguments, *invariant], [bool_type])
        scf.ConditionOp(_scalar_i1(flag), list(before.arguments))
    with ir.InsertionPoint(after), _region_scope(ctx):
        scf.YieldOp(_inline(ctx, "body_fn", [*after.arguments, *invariant], types))
    return list(while_op.results)


@lowering("mo.call")
def lower_call(ctx: LoweringContext) -> list[ir.Value]:
    # Inlined as MAX does: the body's ops land in the caller, where the schedule sees them.
    types = [builtin_tensor_type(t) for t in ctx.result_types]
    return _inline(ctx, "callee", list(ctx.operands), types)


