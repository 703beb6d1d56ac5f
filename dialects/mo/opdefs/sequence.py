"""Scans, masks, padding, copies and generated sequences: ``mo.cumsum``, ``mo.band_part``,
``mo.pad``, ``mo.range``, ``mo.rebind``, ``mo.shape_to_tensor`` and ``mo.tile``.

Their numpy references live here too (registered into ``reference.REFERENCES``, which the
constant folder and the tests read), beside the rules they mirror.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from max.dialects.mo._dim_poly import _exact_div
from max.dialects.mo.dim import Dim, _from_poly, _parse_dim
from max.dialects.mo.opdefs import reference as ref
from max.dialects.mo.opdefs.base import (
    INT,
    INTS,
    STR,
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
from max.dialects.mo.opdefs.elementwise import numeric
from max.dialects.mo.opdefs.reference import Folder, FoldContext, NotFoldable
from max.dtype import DType


def _flag(op: str, attrs: Mapping[str, Any], name: str) -> bool:
    value = attrs[name]
    if value not in (0, 1):
        raise TypeRuleError(f"{op}: attribute {name}={value!r} must be 0 or 1")
    return bool(value)


# -- type rules ------------------------------------------------------------------------------------


def _cumsum(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    (x,) = operands
    check_axis(op, attrs["axis"], len(x.shape))
    _flag(op, attrs, "exclusive")
    _flag(op, attrs, "reverse")
    return TensorSig(numeric(op, x.dtype), tuple(x.shape), x.device)


def _band_part(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    (x,) = operands
    if len(x.shape) < 2:
        raise TypeRuleError(f"{op}: operand x {shape_text(x.shape)} must have rank >= 2")
    for name in ("num_lower", "num_upper"):
        if type(attrs[name]) is not int or attrs[name] < -1:
            raise TypeRuleError(f"{op}: attribute {name}={attrs[name]!r} must be -1 (the whole "
                                "triangle) or >= 0")
    _flag(op, attrs, "exclude")
    return TensorSig(x.dtype, tuple(x.shape), x.device)


def _pad(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    x, value = operands
    names = ("x", "value")
    device = same_device(op, names, operands)
    dtype = same_dtype(op, names, operands)
    if len(value.shape) != 0:
        raise TypeRuleError(f"{op}: operand value {shape_text(value.shape)} must have rank 0")
    paddings = list(attrs["paddings"])
    if len(paddings) != 2 * len(x.shape) or any(p < 0 for p in paddings):
        raise TypeRuleError(f"{op}: attribute paddings={paddings} must hold 2 non-negative "
                            f"entries per dim of operand x {shape_text(x.shape)}")
    dims = tuple(d + paddings[2 * i] + paddings[2 * i + 1] for i, d in enumerate(x.shape))
    return TensorSig(dtype, dims, device)


def _check_range(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                 result: TypeLike) -> None:
    names = ("start", "stop", "step")
    device = same_device(op, names, operands)
    dtype = numeric(op, same_dtype(op, names, operands))
    for name, v in zip(names, operands):
        if len(v.shape) != 0:
            raise TypeRuleError(f"{op}: operand {name} {shape_text(v.shape)} must have rank 0")
    expect_dtype(op, result, dtype)
    expect_device(op, result, device)
    if len(result.shape) != 1:
        raise TypeRuleError(f"{op}: result {shape_text(result.shape)} must have rank 1 (its "
                            "length is checked against the operands at run time)")


def _check_rebind(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                  result: TypeLike) -> None:
    (x,) = operands
    expect_dtype(op, result, x.dtype)
    expect_device(op, result, x.device)
    if not isinstance(attrs["message"], str):
        raise TypeRuleError(f"{op}: attribute message must be a string")
    if len(result.shape) != len(x.shape):
        raise TypeRuleError(f"{op}: result {shape_text(result.shape)} must have the rank of "
                            f"operand x {shape_text(x.shape)}")
    for i, (a, b) in enumerate(zip(x.shape, result.shape)):
        if static(a) is not None and static(b) is not None and a != b:
            raise TypeRuleError(f"{op}: dim {i} is {a} in operand x {shape_text(x.shape)} and "
                                f"{b} in the result {shape_text(result.shape)}")


def _check_tile(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                result: TypeLike) -> None:
    (x,) = operands
    expect_dtype(op, result, x.dtype)
    expect_device(op, result, x.device)
    if len(result.shape) != len(x.shape):
        raise TypeRuleError(f"{op}: result {shape_text(result.shape)} must have the rank of "
                            f"operand x {shape_text(x.shape)}")
    for i, (d, o) in enumerate(zip(x.shape, result.shape)):
        # o = d * k, provably (a 0 dim stays 0): the copies of x fill the result exactly. A
        # static k must be positive; a symbolic one is a repeat count bound by an input.
        if static(d) == 0:
            ok = static(o) == 0
        else:
            k = _exact_div(o._poly, d._poly)
            count = None if k is None else static(_from_poly(k))
            ok = k is not None and (count is None or count > 0)
        if not ok:
            raise TypeRuleError(f"{op}: dim {i} of the result ({o}) is not a positive multiple "
                                f"of dim {i} of operand x {shape_text(x.shape)}")


def shape_dims(op: str, text: Any) -> list[Dim]:
    """The dims of ``mo.shape_to_tensor``'s ``dims`` attribute: a JSON list in the MO type's
    own dim spelling (``[\"batch\", 3]``)."""
    try:
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError("not a list")
        dims = []
        for d in items:
            if isinstance(d, bool) or not isinstance(d, int | str):
                raise ValueError(f"{d!r} is not a dim")
            if isinstance(d, int) and d < 0:
                raise ValueError(f"negative dim {d}")
            dims.append(_parse_dim(d))
    except (ValueError, TypeError) as e:
        raise TypeRuleError(f"{op}: attribute dims={text!r} is not a list of dims: {e}") from None
    return dims


def _check_shape_to_tensor(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                           result: TypeLike) -> None:
    dims = shape_dims(op, attrs["dims"])
    expect_dtype(op, result, DType.int64)
    if list(result.shape) != [Dim(len(dims))]:
        raise TypeRuleError(f"{op}: result {shape_text(result.shape)} should be "
                            f"[{len(dims)}] (one element per dim)")


# -- numpy references ------------------------------------------------------------------------------


def _ref_cumsum(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    if x.dtype == np.bool_:
        raise NotFoldable("cumsum of bool")
    axis = ctx.int("axis")
    if ctx.int("reverse"):
        x = np.flip(x, axis)
    out = np.cumsum(x, axis=axis, dtype=x.dtype)  # the operand's dtype: ints wrap as compiled
    if ctx.int("exclusive") and x.shape[axis]:
        # Shifted by one (not ``out - x``, which would round differently): 0, x0, x0 + x1...
        head = np.zeros_like(np.take(out, [0], axis=axis))
        out = np.concatenate([head, np.take(out, np.arange(x.shape[axis] - 1), axis=axis)], axis)
    return np.flip(out, axis) if ctx.int("reverse") else out


def _ref_band_part(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    lower, upper = ctx.int("num_lower"), ctx.int("num_upper")
    m = np.arange(x.shape[-2])[:, None]
    n = np.arange(x.shape[-1])[None, :]
    keep = ((lower < 0) | (m - n <= lower)) & ((upper < 0) | (n - m <= upper))
    if ctx.int("exclude"):
        keep = ~keep
    return np.where(keep, x, np.zeros((), x.dtype))


def _ref_pad(ctx: FoldContext, x: np.ndarray, value: np.ndarray) -> np.ndarray:
    p = ctx.ints("paddings")
    widths = [(p[2 * i], p[2 * i + 1]) for i in range(x.ndim)]
    return np.pad(x, widths, mode="constant", constant_values=value.item())


def range_length(start: Any, stop: Any, step: Any) -> int:
    """Elements of ``range(start, stop, step)``: ``ceil((stop - start) / step)``, at least 0.

    Integers exactly (Python ints); floats in float64, as the compiled code computes it.
    """
    if step == 0:
        raise ValueError("step is 0")
    if all(isinstance(v, int | np.integer) for v in (start, stop, step)):
        return len(range(int(start), int(stop), int(step)))
    return max(0, math.ceil((float(stop) - float(start)) / float(step)))


def _ref_range(ctx: FoldContext, start: np.ndarray, stop: np.ndarray,
               step: np.ndarray) -> np.ndarray:
    values = [v.item() for v in (start, stop, step)]
    if values[2] == 0:
        raise NotFoldable("range step 0: the compiled code reports it")
    if ctx.shape != (range_length(*values),):
        raise NotFoldable("range length is not the declared one: the compiled code reports it")
    i = np.arange(ctx.shape[0])
    if ctx.dtype.kind in "iu":
        return (int(values[0]) + i.astype(object) * int(values[2])).astype(ctx.dtype)
    return float(values[0]) + i.astype(np.float64) * float(values[2])  # f64, rounded once


def _ref_rebind(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    if x.shape != ctx.shape:
        raise NotFoldable("rebind to another shape: the compiled code reports it")
    return x


def _ref_tile(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    reps = [o // d if d else 1 for o, d in zip(ctx.shape, x.shape)]
    return np.tile(x, reps).reshape(ctx.shape)


def _ref_shape_to_tensor(ctx: FoldContext) -> np.ndarray:
    dims = shape_dims("mo.shape_to_tensor", ctx.str("dims"))
    values = [static(d) for d in dims]
    if any(v is None for v in values):
        raise NotFoldable("symbolic dims are known at run time only")
    return np.array(values, np.int64).reshape(ctx.shape)


ref.REFERENCES.update({
    "mo.cumsum": Folder(_ref_cumsum),
    "mo.band_part": Folder(_ref_band_part),
    "mo.pad": Folder(_ref_pad),
    "mo.range": Folder(_ref_range),
    "mo.rebind": Folder(_ref_rebind),
    "mo.shape_to_tensor": Folder(_ref_shape_to_tensor),
    "mo.tile": Folder(_ref_tile),
})


def defs() -> list[OpDef]:
    R = ref.REFERENCES
    return [
        OpDef("mo.cumsum", ("x",), (AttrDef("axis", INT), AttrDef("exclusive", INT),
                                    AttrDef("reverse", INT)),
              infer=_cumsum, reference=R["mo.cumsum"]),
        OpDef("mo.band_part", ("x",), (AttrDef("num_lower", INT), AttrDef("num_upper", INT),
                                       AttrDef("exclude", INT)),
              infer=_band_part, reference=R["mo.band_part"]),
        OpDef("mo.pad", ("x", "value"), (AttrDef("paddings", INTS),), infer=_pad,
              reference=R["mo.pad"]),
        OpDef("mo.range", ("start", "stop", "step"), check=_check_range,
              reference=R["mo.range"], defines_dim=lambda attrs: 0),
        OpDef("mo.rebind", ("x",), (AttrDef("message", STR),), check=_check_rebind,
              reference=R["mo.rebind"]),
        OpDef("mo.shape_to_tensor", (), (AttrDef("dims", STR),), check=_check_shape_to_tensor,
              reference=R["mo.shape_to_tensor"]),
        OpDef("mo.tile", ("x",), check=_check_tile, reference=R["mo.tile"]),
    ]
