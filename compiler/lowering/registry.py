"""The lowering registry: one rule per MO op, found by op name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mlir import ir

from max.dialects.mo.opdefs import OPS

if TYPE_CHECKING:
    from max.compiler.lowering.context import LoweringContext

Rule = Callable[["LoweringContext"], Sequence[ir.Value]]

_RULES: dict[str, Rule] = {}


def lowering(*op_names: str) -> Callable[[Rule], Rule]:
    """Decorator: registers ``fn`` as the rule for each of ``op_names`` ("mo.add")."""

    def wrap(fn: Rule) -> Rule:
        for name in op_names:
            if name not in OPS:  # a rule for an op nobody defined would never be verified
                raise ValueError(f"lowering for {name!r}: no such MO op definition")
            if name in _RULES and _RULES[name] is not fn:
                raise ValueError(f"lowering for {name!r} registered twice")
            _RULES[name] = fn
        return fn

    return wrap


def get_rule(op_name: str) -> Rule | None:
    """The rule for ``op_name``, or None."""
    return _RULES.get(op_name)


def all_rules() -> dict[str, Rule]:
    """Every registered rule, by op name."""
    return dict(_RULES)
