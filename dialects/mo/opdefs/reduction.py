"""Reductions over one axis (kept with size 1) and normalizations (the operand's shape)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from max.dialects.mo.dim import Dim
from max.dialects.mo.opdefs import reference as ref
from max.dialects.mo.opdefs.base import (
    FLOAT,
    INT,
    AttrDef,
    OpDef,
    TensorSig,
    TypeLike,
    TypeRuleError,
    check_axis,
    same_device,
    same_dtype,
    shape_text,
    static,
)
from max.dialects.mo.opdefs.elementwise import any_dtype, floating, numeric
from max.dtype import DType


# Reductions without an identity: over an empty axis they have no value (numpy raises).
_NEEDS_ELEMENT = ("mo.reduce_max", "mo.reduce_min", "mo.argmax", "mo.argmin")


def _reduction(dtype_rule: Any) -> Any:
    def infer(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
        (x,) = operands
        axis = check_axis(op, attrs["axis"], len(x.shape))
        if op in _NEEDS_ELEMENT and static(x.shape[axis]) == 0:
            raise TypeRuleError(f"{op}: axis {axis} of operand x {shape_text(x.shape)} is "
                                "empty, and this reduction has no value over nothing")
        dims = list(x.shape)
        dims[axis] = Dim(1)
        return TensorSig(dtype_rule(op, x.dtype), tuple(dims), x.device)

    return infer


def _int64(op: str, dtype: DType) -> DType:
    return DType.int64


def _normalization(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    (x,) = operands
    check_axis(op, attrs["axis"], len(x.shape))
    return TensorSig(floating(op, x.dtype), tuple(x.shape), x.device)


def _layer_norm(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    names = ("x", "gamma", "beta")
    x, gamma, beta = operands
    device = same_device(op, names, operands)
    dtype = floating(op, same_dtype(op, names, operands))
    epsilon = attrs["epsilon"]
    if not (isinstance(epsilon, float) and math.isfinite(epsilon) and epsilon > 0):
        raise TypeRuleError(f"{op}: attribute epsilon={epsilon!r} must be a positive float")
    for name, p in (("gamma", gamma), ("beta", beta)):
        rank = len(p.shape)
        if not 1 <= rank <= len(x.shape) or list(p.shape) != list(x.shape[len(x.shape) - rank:]):
            raise TypeRuleError(f"{op}: operand {name} {shape_text(p.shape)} does not match the "
                                f"last dims of operand x {shape_text(x.shape)}")
    return TensorSig(dtype, tuple(x.shape), device)


def defs() -> list[OpDef]:
    R = ref.REFERENCES
    axis = (AttrDef("axis", INT),)
    rules = {"mo.reduce_sum": numeric, "mo.reduce_mean": numeric, "mo.reduce_max": any_dtype,
             "mo.reduce_min": any_dtype, "mo.argmax": _int64, "mo.argmin": _int64}
    out = [OpDef(name, ("x",), axis, infer=_reduction(rule), reference=R[name])
           for name, rule in rules.items()]
    out += [OpDef(name, ("x",), axis, infer=_normalization, reference=R[name])
            for name in ("mo.softmax", "mo.logsoftmax")]
    out.append(OpDef("mo.layer_norm", ("x", "gamma", "beta"), (AttrDef("epsilon", FLOAT),),
                     infer=_layer_norm, reference=R["mo.layer_norm"]))
    return out
