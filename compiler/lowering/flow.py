"""Lowering of control flow: ``mo.cond`` -> ``scf.if``, ``mo.while`` -> ``scf.while``,
``mo.call`` inline; where ``call.py`` makes the bodies functions (the CPU target: a subgraph
called more than once, cond branches, loop bodies), the regions call them instead.

Each body (a subgraph function named by a symbol attribute) is lowered in place, inside the
region, with its arguments mapped to the op's lowered operands, so nested control flow and
every op rule work unchanged, and the rest of the pipeline (bufferization of scf, the entry
ABI) sees one function. Dim values computed inside a region are dropped from the cache
afterwards (they do not dominate what follows).

A runtime check inside a body has its flag defined inside the region, which nothing after the
op may use. So each such check gets a cell (an ``i8`` ``memref.alloca`` zeroed at the entry
of the function: one per check, never inside a loop, where an alloca would grow the stack
each iteration); the region ORs its flag into the cell before its terminator (a loop's
regions run many times: a failure in any iteration stays), and the value loaded from the cell
after the op is a check of the enclosing region or function. Nested bodies repeat this level
by level. Buffers (memrefs) pass into bodies as they are: their accesses are memref ops in
program order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from mlir import ir
from mlir.dialects import arith, memref, scf, tensor

from max.compiler.lowering.body import coerce, lower_block
from max.compiler.lowering.builders import i8_flag
from max.compiler.lowering.call import Call, lower_outlined_call, outlined
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


class _Scope:
    """The checks a region's body added (set when the ``with`` block ends)."""

    checks: list[tuple[ir.Value, str]]


@contextmanager
def _region_scope(ctx: LoweringContext) -> Iterator[_Scope]:
    """Keeps dims computed inside a region out of the function's cache, and the region's
    checks out of the function's list (they go to ``scope.checks``)."""
    state = ctx.fn
    dims, checks = state._dims, state.checks
    state._dims, state.checks = dict(dims), []
    scope = _Scope()
    try:
        yield scope
    finally:
        scope.checks = state.checks
        state._dims, state.checks = dims, checks


def _entry_block(block: ir.Block) -> ir.Block:
    """The entry block of the function that (at some depth) holds ``block``."""
    op = block.owner.operation
    while op.name != "func.func":
        op = op.parent.operation
    return op.regions[0].blocks[0]


class _Cells:
    """The memory cells through which the checks of an op's regions leave them."""

    def __init__(self) -> None:
        self.cells: list[tuple[ir.Value, str]] = []

    def store(self, checks: list[tuple[ir.Value, str]]) -> None:
        """ORs each flag into a fresh cell, at the end of the current region."""
        i8 = ir.IntegerType.get_signless(8)
        for flag, message in checks:
            here = ir.InsertionPoint.current
            with ir.InsertionPoint.at_block_begin(_entry_block(here.block)):
                cell = memref.alloca(ir.MemRefType.get([], i8), [], [])
                memref.store(arith.constant(i8, 0), cell, [])
            memref.store(arith.ori(memref.load(cell, []), i8_flag(flag)), cell, [])
            self.cells.append((cell, message))

    def register(self, ctx: LoweringContext) -> None:
        """After the op: each cell's value is a check of the enclosing region/function."""
        for cell, message in self.cells:
            ctx.add_check(memref.load(cell, []), message)


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
    cells = _Cells()
    for block, attr in ((if_op.then_block, "then_fn"), (if_op.else_block, "else_fn")):
        with ir.InsertionPoint(block):
            with _region_scope(ctx) as scope:
                out = _body(ctx, attr, Call(list(args), list(ctx.operand_types[1:]),
                                            list(ctx.result_types)))
            cells.store(scope.checks)
            scf.YieldOp(out)
    cells.register(ctx)
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
    cells = _Cells()
    with ir.InsertionPoint(before):
        with _region_scope(ctx) as scope:
            (flag,) = _inline(ctx, "pred_fn", [*before.arguments, *invariant], [bool_type])
        cells.store(scope.checks)
        scf.ConditionOp(_scalar_i1(flag), list(before.arguments))
    with ir.InsertionPoint(after):
        with _region_scope(ctx) as scope:
            out = _body(ctx, "body_fn", Call(
                [*after.arguments, *invariant],
                list(ctx.result_types) + list(ctx.operand_types[k:]), list(ctx.result_types)))
        cells.store(scope.checks)
        scf.YieldOp(out)
    cells.register(ctx)
    return list(while_op.results)


def _body(ctx: LoweringContext, attr: str, call: Call) -> list[ir.Value]:
    """A cond branch or loop body: a call of its function where it is outlined (its ops are
    scheduled there; inside the region they would be plain loops), else inlined."""
    if outlined(ir.FlatSymbolRefAttr(ctx.attr(attr)).value):
        return lower_outlined_call(ctx, _callee(ctx, attr).owner.operation, call)
    return _inline(ctx, attr, call.operands, [builtin_tensor_type(t) for t in call.result_types])


@lowering("mo.call")
def lower_call(ctx: LoweringContext) -> list[ir.Value]:
    if outlined(ir.FlatSymbolRefAttr(ctx.attr("callee")).value):
        return lower_outlined_call(ctx, _callee(ctx, "callee").owner.operation)
    # Inlined as MAX does: the body's ops land in the caller, where the schedule sees them.
    types = [builtin_tensor_type(t) for t in ctx.result_types]
    return _inline(ctx, "callee", list(ctx.operands), types)


