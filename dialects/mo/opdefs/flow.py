"""Control-flow ops: ``mo.cond``, ``mo.while``, ``mo.call``.

IRDL ops hold no regions, so each body is a further ``func.func`` of the module (a subgraph:
no ``mo.graph`` attribute) named by a symbol attribute; values a body uses from the enclosing
graph are explicit operands (the callee's trailing arguments). IRDL unifies the types within
one variadic group, so operands and results are split into :data:`GROUPS` variadic groups, each
a run of equal types (``operandSegmentSizes``/``resultSegmentSizes``). Their result types come
from the callees' signatures, which only the module knows: the MO verifier checks them
(``max.dialects.mo.verify``), the builders in ``max.graph.ops.flow`` build both sides at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from max.dialects.mo.opdefs.base import INT, SYMBOL, AttrDef, OpDef, TypeLike, TypeRuleError

GROUPS = 16
ARGS = tuple(f"args{i}" for i in range(GROUPS))

# Per op: the attributes naming subgraph functions.
CALLEES = {"mo.cond": ("then_fn", "else_fn"), "mo.while": ("pred_fn", "body_fn"),
           "mo.call": ("callee",)}


def segments(types: Sequence[Any], op: str, what: str = "operands") -> list[int]:
    """The sizes of the :data:`GROUPS` groups holding ``types`` in order: one group per run of
    equal types, then empty groups. More runs than groups is a ``ValueError`` naming ``op``."""
    sizes: list[int] = []
    for i, t in enumerate(types):
        if i and t == types[i - 1]:
            sizes[-1] += 1
        else:
            sizes.append(1)
    if len(sizes) > GROUPS:
        raise ValueError(f"{op}: its {what} change type {len(sizes)} times in a row; at most "
                         f"{GROUPS} runs of equal types fit the op")
    return sizes + [0] * (GROUPS - len(sizes))


def _module_checked(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                    result: TypeLike) -> None:
    """Control-flow ops are checked against their callees, which the rule cannot see."""
    raise TypeRuleError(f"{op}: result types are checked against the subgraph functions by the "
                        "module verifier")


def defs() -> list[OpDef]:
    return [
        OpDef("mo.cond", ("pred", *ARGS),
              (AttrDef("then_fn", SYMBOL), AttrDef("else_fn", SYMBOL)), check=_module_checked),
        OpDef("mo.while", ARGS,
              (AttrDef("pred_fn", SYMBOL), AttrDef("body_fn", SYMBOL),
               AttrDef("num_carried", INT)), check=_module_checked),
        OpDef("mo.call", ARGS, (AttrDef("callee", SYMBOL),), check=_module_checked),
    ]
