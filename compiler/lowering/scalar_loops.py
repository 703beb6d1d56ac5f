"""scf loops, branches and whiles that thread values (tensors, scalars) through their
bodies, for lowerings written as scalar loops (sorts, scatters)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlir import ir
from mlir.dialects import scf

from max.compiler.lowering.builders import index_constant

Body = Callable[[list[ir.Value], list[ir.Value]], Sequence[ir.Value]]


def for_(lo: ir.Value, hi: ir.Value, step: ir.Value, args: Sequence[ir.Value],
         body: Callable[[ir.Value, list[ir.Value]], Sequence[ir.Value]]) -> list[ir.Value]:
    """scf.for threading ``args``; ``body(iv, args)`` returns the next values."""
    op = scf.ForOp(lo, hi, step, list(args))
    with ir.InsertionPoint(op.body):
        scf.YieldOp(list(body(op.induction_variable, list(op.inner_iter_args))))
    return list(op.results)


def nest(bounds: Sequence[ir.Value], args: Sequence[ir.Value], body: Body) -> list[ir.Value]:
    """A row-major nest of scf.for over ``bounds``; ``body(ivs, args)`` returns the next args."""
    def level(k: int, ivs: list[ir.Value], cur: list[ir.Value]) -> list[ir.Value]:
        if k == len(bounds):
            return list(body(ivs, cur))
        return for_(index_constant(0), bounds[k], index_constant(1), cur,
                    lambda iv, inner: level(k + 1, [*ivs, iv], inner))
    return level(0, [], list(args))


def if_(cond: ir.Value, then: Callable[[], Sequence[ir.Value]],
        otherwise: Sequence[ir.Value]) -> list[ir.Value]:
    """scf.if yielding ``then()`` when ``cond``, else the values ``otherwise``."""
    op = scf.IfOp(cond, [v.type for v in otherwise], has_else=True)
    with ir.InsertionPoint(op.then_block):
        scf.YieldOp(list(then()))
    with ir.InsertionPoint(op.else_block):
        scf.YieldOp(list(otherwise))
    return list(op.results)


def choose(cond: ir.Value, types: Sequence[ir.Type], then: Callable[[], Sequence[ir.Value]],
            otherwise: Callable[[], Sequence[ir.Value]]) -> list[ir.Value]:
    """scf.if yielding ``then()`` when ``cond``, else ``otherwise()``."""
    op = scf.IfOp(cond, list(types), has_else=True)
    with ir.InsertionPoint(op.then_block):
        scf.YieldOp(list(then()))
    with ir.InsertionPoint(op.else_block):
        scf.YieldOp(list(otherwise()))
    return list(op.results)


def while_(args: Sequence[ir.Value], cond: Callable[[list[ir.Value]], ir.Value],
           body: Callable[[list[ir.Value]], Sequence[ir.Value]]) -> list[ir.Value]:
    """scf.while threading ``args``: runs ``body(args)`` while ``cond(args)``."""
    types = [v.type for v in args]
    op = scf.WhileOp(types, list(args))
    before = op.before.blocks.append(*types)
    with ir.InsertionPoint(before):
        scf.ConditionOp(cond(list(before.arguments)), list(before.arguments))
    after = op.after.blocks.append(*types)
    with ir.InsertionPoint(after):
        scf.YieldOp(list(body(list(after.arguments))))
    return list(op.results)


__all__ = ["Body", "choose", "for_", "if_", "nest", "while_"]
