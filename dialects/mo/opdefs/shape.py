"""Shape and data-movement MO ops, and ``mo.matmul``, ``mo.gather``, ``mo.constant``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlir import ir

from max.dialects.mo.dim import Dim
from max.dialects.mo.opdefs import reference as ref
from max.dialects.mo.opdefs.base import (
    ELEMENTS,
    INT,
    INTS,
    AttrDef,
    OpDef,
    TensorSig,
    TypeLike,
    TypeRuleError,
    check_axis,
    expect_device,
    expect_dtype,
    num_elements,
    same_device,
    same_dtype,
    shape_text,
    static,
)
from max.dialects.mo.types import ELEMENT_TYPES
from max.dtype import DType


def _keeps(op: str, x: TypeLike, result: TypeLike) -> None:
    expect_dtype(op, result, x.dtype)
    expect_device(op, result, x.device)


def _check_reshape(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                   result: TypeLike) -> None:
    (x,) = operands
    _keeps(op, x, result)
    have, want = num_elements(x.shape), num_elements(result.shape)
    if have != want:
        raise TypeRuleError(
            f"{op}: operand x {shape_text(x.shape)} has {have} elements, result "
            f"{shape_text(result.shape)} has {want} (they must be provably equal)")


def _transpose(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    (x,) = operands
    perm = list(attrs["permutation"])
    if sorted(perm) != list(range(len(x.shape))):
        raise TypeRuleError(f"{op}: attribute permutation={perm} is not a permutation of the "
                            f"{len(x.shape)} axes of operand x {shape_text(x.shape)}")
    return TensorSig(x.dtype, tuple(x.shape[p] for p in perm), x.device)


def _check_broadcast_to(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                        result: TypeLike) -> None:
    (x,) = operands
    _keeps(op, x, result)
    offset = len(result.shape) - len(x.shape)
    if offset < 0:
        raise TypeRuleError(f"{op}: cannot broadcast operand x {shape_text(x.shape)} to the "
                            f"lower-rank result {shape_text(result.shape)}")
    for i, d in enumerate(x.shape):
        if d != 1 and d != result.shape[offset + i]:
            raise TypeRuleError(
                f"{op}: cannot broadcast operand x {shape_text(x.shape)} to result "
                f"{shape_text(result.shape)}: dim {i} is {d}, result has "
                f"{result.shape[offset + i]} (must be equal or the operand's a static 1)")


def _concat(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    lhs, rhs = operands
    names = ("lhs", "rhs")
    device = same_device(op, names, operands)
    dtype = same_dtype(op, names, operands)
    if len(lhs.shape) != len(rhs.shape):
        raise TypeRuleError(f"{op}: operands lhs {shape_text(lhs.shape)} and rhs "
                            f"{shape_text(rhs.shape)} have different ranks")
    axis = check_axis(op, attrs["axis"], len(lhs.shape))
    for i, (a, b) in enumerate(zip(lhs.shape, rhs.shape)):
        if i != axis and a != b:
            raise TypeRuleError(f"{op}: dim {i} differs between lhs {shape_text(lhs.shape)} "
                                f"and rhs {shape_text(rhs.shape)} (only axis {axis} may)")
    dims = list(lhs.shape)
    dims[axis] = lhs.shape[axis] + rhs.shape[axis]
    return TensorSig(dtype, tuple(dims), device)


def _check_slice(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                 result: TypeLike) -> None:
    (x,) = operands
    _keeps(op, x, result)
    starts, stops, steps = (list(attrs[k]) for k in ("starts", "stops", "steps"))
    rank = len(x.shape)
    if not len(starts) == len(stops) == len(steps) == rank == len(result.shape):
        raise TypeRuleError(
            f"{op}: starts/stops/steps ({len(starts)}/{len(stops)}/{len(steps)} entries) and "
            f"result {shape_text(result.shape)} must have one entry per dim of operand x "
            f"{shape_text(x.shape)}")
    for i, (n, a, b, s, want) in enumerate(zip(x.shape, starts, stops, steps, result.shape)):
        if s == 0:
            raise TypeRuleError(f"{op}: steps[{i}] is 0")
        size = static(n)
        if size is None:
            continue  # the compiled code checks the declared length at run time
        length = len(range(*slice(a, b, s).indices(size)))
        if want != length:
            raise TypeRuleError(
                f"{op}: dim {i} of the result is {want}, but slice({a}, {b}, {s}) of operand "
                f"x {shape_text(x.shape)} has length {length}")


def _gather(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    x, indices = operands
    device = same_device(op, ("x", "indices"), operands)
    if not indices.dtype.is_integral():
        raise TypeRuleError(f"{op}: operand indices must have an integer dtype, got "
                            f"{indices.dtype.name}")
    axis = check_axis(op, attrs["axis"], len(x.shape))
    dims = (*x.shape[:axis], *indices.shape, *x.shape[axis + 1:])
    return TensorSig(x.dtype, tuple(dims), device)


def _matmul(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    lhs, rhs = operands
    names = ("lhs", "rhs")
    device = same_device(op, names, operands)
    dtype = same_dtype(op, names, operands)
    if dtype == DType.bool:
        raise TypeRuleError(f"{op}: expected a numeric dtype, got bool")
    shapes = f"lhs {shape_text(lhs.shape)}, rhs {shape_text(rhs.shape)}"
    if len(lhs.shape) < 2 or len(rhs.shape) < 2:
        raise TypeRuleError(f"{op}: operands must have rank >= 2 ({shapes})")
    if lhs.shape[-1] != rhs.shape[-2]:
        raise TypeRuleError(f"{op}: the K dims differ: lhs has {lhs.shape[-1]}, rhs has "
                            f"{rhs.shape[-2]} ({shapes})")
    batch = tuple(lhs.shape[:-2])
    if len(rhs.shape) != 2 and tuple(rhs.shape[:-2]) != batch:
        raise TypeRuleError(f"{op}: batch dims must be equal, or rhs of rank 2 ({shapes})")
    return TensorSig(dtype, (*batch, lhs.shape[-2], rhs.shape[-1]), device)


def element_dtype(t: ir.Type) -> DType | None:
    """The DType of an MLIR element type spelled as in MO types (``si32``, ``f32``, ``i1``)."""
    name = ELEMENT_TYPES.get(str(t))
    return None if name is None else DType[name]


def _check_constant(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                    result: TypeLike) -> None:
    value = attrs["value"]
    try:
        shaped = ir.ShapedType(value.type)
    except (AttributeError, ValueError, TypeError):
        raise TypeRuleError(f"{op}: attribute value must be a dense elements attribute") from None
    dims = [Dim(d) for d in shaped.shape] if shaped.has_rank else None
    if dims is None or any(static(d) is None for d in result.shape) or dims != list(
            result.shape):
        raise TypeRuleError(f"{op}: value of type {value.type} does not have the result's "
                            f"static shape {shape_text(result.shape)}")
    if element_dtype(shaped.element_type) != result.dtype:
        raise TypeRuleError(f"{op}: value elements {shaped.element_type} do not match the "
                            f"result dtype {result.dtype.name}")


def defs() -> list[OpDef]:
    R = ref.REFERENCES
    return [
        OpDef("mo.constant", (), (AttrDef("value", ELEMENTS),), check=_check_constant),
        OpDef("mo.reshape", ("x",), check=_check_reshape, reference=R["mo.reshape"]),
        OpDef("mo.transpose", ("x",), (AttrDef("permutation", INTS),), infer=_transpose,
              reference=R["mo.transpose"]),
        OpDef("mo.broadcast_to", ("x",), check=_check_broadcast_to,
              reference=R["mo.broadcast_to"]),
        OpDef("mo.concat", ("lhs", "rhs"), (AttrDef("axis", INT),), infer=_concat,
              reference=R["mo.concat"]),
        OpDef("mo.slice", ("x",), (AttrDef("starts", INTS), AttrDef("stops", INTS),
                                   AttrDef("steps", INTS)),
              check=_check_slice, reference=R["mo.slice"]),
        OpDef("mo.gather", ("x", "indices"), (AttrDef("axis", INT),), infer=_gather,
              reference=R["mo.gather"]),
        OpDef("mo.matmul", ("lhs", "rhs"), infer=_matmul, reference=R["mo.matmul"]),
    ]
