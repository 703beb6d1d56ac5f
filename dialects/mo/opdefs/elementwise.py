"""Elementwise MO ops: unary ops keep their operand's shape; binary ops (and ``mo.where``)
broadcast their operands' shapes numpy-style; operands share one dtype, and a dtype rule per op
gives the result dtype."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from max.dialects.mo.opdefs import reference as ref
from max.dialects.mo.opdefs.base import (
    STR,
    AttrDef,
    OpDef,
    TensorSig,
    TypeLike,
    TypeRuleError,
    broadcast,
    expect_device,
    expect_shape,
    same_device,
    same_dtype,
)
from max.dtype import DType

# -- dtype rules: check the (common) operand dtype and return the result dtype -------------------


def any_dtype(op: str, dtype: DType) -> DType:
    return dtype


def numeric(op: str, dtype: DType) -> DType:
    if dtype == DType.bool:
        raise TypeRuleError(f"{op}: expected a numeric dtype, got bool")
    return dtype


def floating(op: str, dtype: DType) -> DType:
    if not dtype.is_float():
        raise TypeRuleError(
            f"{op}: expected a floating-point dtype, got {dtype.name}; cast with ops.cast")
    return dtype


def boolean(op: str, dtype: DType) -> DType:
    if dtype != DType.bool:
        raise TypeRuleError(f"{op}: expected dtype bool, got {dtype.name}")
    return dtype


def float_to_bool(op: str, dtype: DType) -> DType:
    floating(op, dtype)
    return DType.bool


def to_bool(op: str, dtype: DType) -> DType:
    return DType.bool


DTypeRule = Callable[[str, DType], DType]

_GELU_APPROXIMATIONS = ("none", "tanh", "quick")


def _unary_rule(dtype_rule: DTypeRule) -> Callable[..., TensorSig]:
    def infer(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
        (x,) = operands
        if op == "mo.gelu" and attrs.get("approximate") not in _GELU_APPROXIMATIONS:
            raise TypeRuleError(f"{op}: attribute approximate={attrs.get('approximate')!r} is "
                                f"not one of {_GELU_APPROXIMATIONS}")
        return TensorSig(dtype_rule(op, x.dtype), tuple(x.shape), x.device)

    return infer


def _nary_rule(dtype_rule: DTypeRule, names: tuple[str, ...]) -> Callable[..., TensorSig]:
    def infer(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
        device = same_device(op, names, operands)
        dtype = dtype_rule(op, same_dtype(op, names, operands))
        return TensorSig(dtype, broadcast(op, names, [x.shape for x in operands]), device)

    return infer


def _where(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    names = ("condition", "x", "y")
    condition, x, y = operands
    if condition.dtype != DType.bool:
        raise TypeRuleError(f"{op}: operand condition must have dtype bool, got "
                            f"{condition.dtype.name}")
    device = same_device(op, names, operands)
    dtype = same_dtype(op, names[1:], operands[1:])
    return TensorSig(dtype, broadcast(op, names, [v.shape for v in operands]), device)


def _check_cast(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                result: TypeLike) -> None:
    (x,) = operands
    expect_shape(op, result, x.shape, "a cast keeps its operand's shape")
    expect_device(op, result, x.device)


# name -> dtype rule (the builders in max.graph.ops.elementwise read the same rules).
UNARY: dict[str, DTypeRule] = {
    "abs": numeric, "acos": floating, "cos": floating, "erf": floating, "exp": floating,
    "floor": floating,
    "gelu": floating, "is_inf": float_to_bool, "is_nan": float_to_bool, "log": floating,
    "log1p": floating, "logical_not": boolean, "negate": numeric, "relu": numeric,
    "round": floating, "rsqrt": floating, "sigmoid": floating, "silu": floating,
    "sin": floating, "sqrt": floating, "tanh": floating, "trunc": floating,
}
BINARY: dict[str, DTypeRule] = {
    "add": any_dtype, "div": numeric, "equal": to_bool, "greater": to_bool,
    "greater_equal": to_bool, "logical_and": boolean, "logical_or": boolean,
    "logical_xor": boolean, "max": any_dtype, "min": any_dtype, "mod": numeric,
    "mul": any_dtype, "not_equal": to_bool, "pow": numeric, "sub": numeric,
}


def defs() -> list[OpDef]:
    out = [
        OpDef(f"mo.{name}", ("x",), (AttrDef("approximate", STR),) if name == "gelu" else (),
              infer=_unary_rule(rule), reference=ref.REFERENCES.get(f"mo.{name}"))
        for name, rule in UNARY.items()
    ]
    out += [
        OpDef(f"mo.{name}", ("lhs", "rhs"), infer=_nary_rule(rule, ("lhs", "rhs")),
              reference=ref.REFERENCES.get(f"mo.{name}"))
        for name, rule in BINARY.items()
    ]
    out.append(OpDef("mo.where", ("condition", "x", "y"), infer=_where,
                     reference=ref.REFERENCES["mo.where"]))
    out.append(OpDef("mo.cast", ("x",), check=_check_cast, reference=ref.REFERENCES["mo.cast"]))
    return out
