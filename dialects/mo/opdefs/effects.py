"""Ops that act on the world rather than compute a value: ``mo.print``, ``mo.transfer`` (a
copy of a tensor onto another device) and ``mo.constant_external`` (a weight supplied by name
when the model is loaded).

``mo.print`` writes ``label`` and, when ``values`` is 1, the elements of ``x`` in row-major
order as ``[e0, e1, ...]`` and a newline, to the process's standard output when it runs. It
has no result: the MO passes treat an op without results as an effect and never remove it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from max.dialects.mo.opdefs.base import (
    INT,
    STR,
    AttrDef,
    OpDef,
    TypeLike,
    TypeRuleError,
    shape_text,
    static,
)
from max.dialects.mo.opdefs.reference import REFERENCES, FoldContext, Folder


def _check_print(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                 result: TypeLike | None) -> None:
    if attrs["values"] not in (0, 1):
        raise TypeRuleError(f"{op}: attribute values={attrs['values']!r} must be 0 or 1")


def _check_transfer(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                    result: TypeLike | None) -> None:
    """The result is ``x`` (same dtype and shape) on the result type's device."""
    (x,) = operands
    assert result is not None
    if result.dtype != x.dtype or list(result.shape) != list(x.shape):
        raise TypeRuleError(f"{op}: result {result.dtype.name} {shape_text(result.shape)} must "
                            f"keep operand x's dtype and shape ({x.dtype.name} "
                            f"{shape_text(x.shape)})")


def _check_external(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                    result: TypeLike | None) -> None:
    """A named weight of static shape (the engine checks the array it is given against it)."""
    assert result is not None
    if not attrs["name"]:
        raise TypeRuleError(f"{op}: the weight name must not be empty")
    if any(static(d) is None for d in result.shape):
        raise TypeRuleError(f"{op}: weight {attrs['name']!r} has shape "
                            f"{shape_text(result.shape)}: its dims must be static")


def _transfer_reference(ctx: FoldContext, x: Any) -> Any:
    return x.copy()


REFERENCES["mo.transfer"] = Folder(_transfer_reference, elementwise=True)


def defs() -> list[OpDef]:
    return [
        OpDef("mo.print", ("x",), (AttrDef("label", STR), AttrDef("values", INT)),
              check=_check_print, results=0),
        OpDef("mo.constant_external", (), (AttrDef("name", STR),), check=_check_external),
        OpDef("mo.transfer", ("x",), check=_check_transfer, reference=REFERENCES["mo.transfer"]),
    ]
