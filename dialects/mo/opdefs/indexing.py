"""Sorting and N-d indexing MO ops: ``mo.argsort``, ``mo.gather_nd``, ``mo.scatter``,
``mo.scatter_nd``, ``mo.repeat_interleave``, ``mo.nonzero``, with their type rules and numpy
references.

Indices are untrusted: negative ones count from the end of their axis once (as numpy), one
outside ``[-n, n)`` is reported by the compiled code (never read or written). Duplicate scatter
indices: the update that comes last in row-major order of ``indices`` wins (numpy's sequential
assignment; PyTorch leaves it unspecified).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from max.dialects.mo.opdefs import reference as ref
from max.dialects.mo.opdefs.base import (
    INT,
    AttrDef,
    OpDef,
    TensorSig,
    TypeLike,
    TypeRuleError,
    check_axis,
    expect_device,
    expect_dtype,
    same_device,
    same_dtype,
    shape_text,
    static,
)
from max.dtype import DType


def _integer_indices(op: str, indices: TypeLike) -> None:
    if not indices.dtype.is_integral():
        raise TypeRuleError(f"{op}: operand indices must have an integer dtype, got "
                            f"{indices.dtype.name}")


# -- mo.argsort ------------------------------------------------------------------------------------


def _check_argsort(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                   result: TypeLike) -> None:
    (x,) = operands
    rank = len(x.shape)
    axis = check_axis(op, attrs["axis"], rank)
    if attrs["descending"] not in (0, 1):
        raise TypeRuleError(f"{op}: attribute descending={attrs['descending']!r} must be 0 or 1")
    expect_dtype(op, result, DType.int64)
    expect_device(op, result, x.device)
    if len(result.shape) != rank or any(
            a != b for i, (a, b) in enumerate(zip(x.shape, result.shape)) if i != axis):
        raise TypeRuleError(f"{op}: result shape {shape_text(result.shape)} must be operand x's "
                            f"{shape_text(x.shape)} except on axis {axis}")
    n, k = static(x.shape[axis]), static(result.shape[axis])
    # A symbolic count is checked at run time (k <= n); static ones here.
    if n is not None and k is not None and k > n:
        raise TypeRuleError(f"{op}: result keeps {k} positions of axis {axis}, which has only {n}")


# -- mo.gather_nd ----------------------------------------------------------------------------------


def _gather_nd(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    x, indices = operands
    device = same_device(op, ("x", "indices"), operands)
    _integer_indices(op, indices)
    b = attrs["batch_dims"]
    if type(b) is not int or b < 0:
        raise TypeRuleError(f"{op}: attribute batch_dims={b!r} must be a non-negative int")
    if len(indices.shape) < b + 1:
        raise TypeRuleError(f"{op}: operand indices {shape_text(indices.shape)} needs rank >= "
                            f"batch_dims + 1 = {b + 1}")
    k = static(indices.shape[-1])
    if k is None:
        raise TypeRuleError(f"{op}: the last dim of indices {shape_text(indices.shape)} (the "
                            f"index vector) must be static")
    if b + k > len(x.shape):
        raise TypeRuleError(f"{op}: batch_dims {b} + index vector size {k} exceeds the rank of "
                            f"operand x {shape_text(x.shape)}")
    if list(x.shape[:b]) != list(indices.shape[:b]):
        raise TypeRuleError(f"{op}: the first {b} (batch) dims differ between x "
                            f"{shape_text(x.shape)} and indices {shape_text(indices.shape)}")
    dims = (*x.shape[:b], *indices.shape[b:-1], *x.shape[b + k:])
    return TensorSig(x.dtype, tuple(dims), device)


# -- mo.scatter / mo.scatter_nd --------------------------------------------------------------------


def _scatter(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    x, updates, indices = operands
    device = same_device(op, ("x", "updates", "indices"), operands)
    dtype = same_dtype(op, ("x", "updates"), operands[:2])
    _integer_indices(op, indices)
    rank = len(x.shape)
    axis = check_axis(op, attrs["axis"], rank)
    if list(updates.shape) != list(indices.shape):
        raise TypeRuleError(f"{op}: operands updates {shape_text(updates.shape)} and indices "
                            f"{shape_text(indices.shape)} must have one shape")
    if len(indices.shape) != rank:
        raise TypeRuleError(f"{op}: operand indices {shape_text(indices.shape)} must have the "
                            f"rank of x {shape_text(x.shape)}")
    for i, (d, n) in enumerate(zip(indices.shape, x.shape)):
        if i == axis or d == n:
            continue
        sd, sn = static(d), static(n)
        if sd is None or sn is None or sd > sn:
            raise TypeRuleError(f"{op}: dim {i} of indices {shape_text(indices.shape)} must be "
                                f"at most x's {shape_text(x.shape)} (equal when symbolic)")
    return TensorSig(dtype, tuple(x.shape), device)


def _scatter_nd(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    x, updates, indices = operands
    device = same_device(op, ("x", "updates", "indices"), operands)
    dtype = same_dtype(op, ("x", "updates"), operands[:2])
    _integer_indices(op, indices)
    if not indices.shape:
        raise TypeRuleError(f"{op}: operand indices must have rank >= 1")
    k = static(indices.shape[-1])
    if k is None or k > len(x.shape):
        raise TypeRuleError(f"{op}: the last dim of indices {shape_text(indices.shape)} must be "
                            f"static and at most the rank of x {shape_text(x.shape)}")
    want = (*indices.shape[:-1], *x.shape[k:])
    if list(updates.shape) != list(want):
        raise TypeRuleError(f"{op}: operand updates {shape_text(updates.shape)} should be "
                            f"{shape_text(want)} (indices.shape[:-1] + x.shape[{k}:])")
    return TensorSig(dtype, tuple(x.shape), device)


# -- mo.repeat_interleave --------------------------------------------------------------------------


def _check_repeat_interleave(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                             result: TypeLike) -> None:
    x, repeats = operands
    same_device(op, ("x", "repeats"), operands)
    if not repeats.dtype.is_integral():
        raise TypeRuleError(f"{op}: operand repeats must have an integer dtype, got "
                            f"{repeats.dtype.name}")
    rank = len(x.shape)
    axis = check_axis(op, attrs["axis"], rank)
    if len(repeats.shape) != 1 or repeats.shape[0] not in (x.shape[axis], 1):
        raise TypeRuleError(f"{op}: operand repeats {shape_text(repeats.shape)} must have shape "
                            f"[1] or [{x.shape[axis]}] (dim {axis} of x)")
    expect_dtype(op, result, x.dtype)
    expect_device(op, result, x.device)
    # The repeated dim is declared by the result (the sum of repeats is checked at run time).
    if len(result.shape) != rank or any(
            a != b for i, (a, b) in enumerate(zip(x.shape, result.shape)) if i != axis):
        raise TypeRuleError(f"{op}: result shape {shape_text(result.shape)} must be operand x's "
                            f"{shape_text(x.shape)} except on axis {axis}")


# -- mo.nonzero -----------------------------------------------------------------------------------


def _check_nonzero(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                   result: TypeLike) -> None:
    (x,) = operands
    expect_dtype(op, result, DType.int64)
    expect_device(op, result, x.device)
    # The row count is the number of non-zero elements: a symbol this op binds, or a dim
    # checked at run time.
    if len(result.shape) != 2 or result.shape[1] != len(x.shape):
        raise TypeRuleError(f"{op}: result {shape_text(result.shape)} should be [count, "
                            f"{len(x.shape)}] (one row of indices per non-zero element of "
                            f"operand x {shape_text(x.shape)})")


def defs() -> list[OpDef]:
    R = ref.REFERENCES
    return [
        OpDef("mo.argsort", ("x",), (AttrDef("axis", INT), AttrDef("descending", INT)),
              check=_check_argsort, reference=R["mo.argsort"]),
        OpDef("mo.gather_nd", ("x", "indices"), (AttrDef("batch_dims", INT),), infer=_gather_nd,
              reference=R["mo.gather_nd"]),
        OpDef("mo.scatter", ("x", "updates", "indices"), (AttrDef("axis", INT),),
              infer=_scatter, reference=R["mo.scatter"]),
        OpDef("mo.scatter_nd", ("x", "updates", "indices"), infer=_scatter_nd,
              reference=R["mo.scatter_nd"]),
        OpDef("mo.repeat_interleave", ("x", "repeats"), (AttrDef("axis", INT),),
              check=_check_repeat_interleave, reference=R["mo.repeat_interleave"],
              defines_dim=lambda attrs: int(attrs["axis"])),
        OpDef("mo.nonzero", ("x",), check=_check_nonzero, reference=R["mo.nonzero"],
              defines_dim=lambda attrs: 0),
    ]
