"""MO canonicalization passes: ``mo-fold``, ``mo-cse``, ``mo-dce`` and ``mo-canonicalize``.

IRDL ops carry no traits, so upstream ``canonicalize`` and ``cse`` cannot know that MO ops are
pure and leave them alone; these passes do that work on MO ops (every MO op is pure unless it
touches an ``!mo.buffer`` or ``!mo.chain``). Folding and identities are in ``fold.py``.
"""

from __future__ import annotations

from collections.abc import Hashable

from mlir import ir

from max.compiler.passes.fold import fold_once
from max.compiler.passes.ir_util import blocks, has_uses, is_pure_mo_op, replace_op
from max.compiler.passes.registry import register_pass

# mo-canonicalize gives up after this many rounds of fold + cse + dce (each round shrinks the IR,
# so only a pathological module gets there).
MAX_ROUNDS = 32


def dce_once(module: ir.Module) -> bool:
    """Erases pure MO ops whose results are unused, last op first; True if any was erased."""
    changed = False
    for block in list(blocks(module.operation)):
        for op in reversed([o.operation for o in block.operations]):
            if is_pure_mo_op(op) and not any(has_uses(r) for r in op.results):
                op.erase()
                changed = True
    return changed


def _cse_key(op: ir.Operation) -> Hashable:
    attributes = tuple((name, op.attributes[name]) for name in sorted(op.attributes))
    return (op.name, tuple(op.operands), attributes, tuple(r.type for r in op.results))


def cse_once(module: ir.Module) -> bool:
    """Merges identical pure MO ops within each block into the first; True if any merged."""
    changed = False
    for block in list(blocks(module.operation)):
        seen: dict[Hashable, ir.Operation] = {}
        for op in [o.operation for o in block.operations]:
            if not is_pure_mo_op(op):
                continue
            key = _cse_key(op)
            first = seen.get(key)
            if first is None:
                seen[key] = op
            else:
                replace_op(op, list(first.results))
                changed = True
    return changed


def _to_fixed_point(module: ir.Module, *steps) -> None:
    for _ in range(MAX_ROUNDS):
        changed = False
        for step in steps:
            changed |= step(module)
        if not changed:
            return


@register_pass("mo-dce", "Erase MO ops whose results are unused (to a fixed point)")
def mo_dce(module: ir.Module) -> None:
    _to_fixed_point(module, dce_once)


@register_pass("mo-cse", "Merge identical MO ops (name, operands, attributes, types) in a block")
def mo_cse(module: ir.Module) -> None:
    _to_fixed_point(module, cse_once)


@register_pass(
    "mo-fold",
    "Fold MO ops on constants into mo.constant (numpy) and apply algebraic identities",
)
def mo_fold(module: ir.Module) -> None:
    _to_fixed_point(module, fold_once)


@register_pass("mo-canonicalize", "mo-fold + mo-cse + mo-dce, repeated to a fixed point")
def mo_canonicalize(module: ir.Module) -> None:
    _to_fixed_point(module, fold_once, cse_once, dce_once)
