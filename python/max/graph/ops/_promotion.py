"""DType promotion and broadcasting: the result types of multi-input ops, inferred in Python.

DType promotion decides the dtype of an op with inputs of differing dtypes. Promotion always
returns one of the input dtypes; it never widens to a new dtype. Each dtype is ranked along
two axes, its category (``bool < unsigned int < signed int < float``) and its bit width. The
common dtype has the highest category and the largest bit width of the inputs; it must be one
of the input dtypes and must represent every input exactly, else promotion raises
``ValueError`` (``uint8`` with ``int8``: ``int8`` cannot hold 255; ``int32`` with
``float16``: no input is a 32-bit float).

Python and numpy scalars and numpy arrays are *weak*: they take the dtype of the graph value
they meet, after a check that their values are exactly representable in it (a Python
``float`` never promotes to an integer dtype; ``16777217`` does not fit ``float32``). Two
weak operands raise ``TypeError``: there is no graph value dtype to promote toward.

Shapes broadcast as in numpy: aligned from the right, each pair of dims equal (symbolic dims
by name, algebraic dims by their canonical form) or one of them a static 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from max.dialects.mo.opdefs import OPS
from max.dtype import DType
from max.graph.dim import Dim, StaticDim
from max.graph.graph import Graph
from max.graph.type import DeviceRef, TensorType
from max.graph.value import TensorValue, Value

from max.graph.ops import _dims

_BOOL, _UINT, _INT, _FLOAT = range(4)
_CATEGORY_NAMES = ("bool", "unsigned int", "signed int", "float")

# (exponent bits, mantissa bits) of the floating-point dtypes.
_FLOAT_BITS: dict[DType, tuple[int, int]] = {
    DType.float4_e2m1fn: (2, 1),
    DType.float8_e4m3fn: (4, 3),
    DType.float8_e4m3fnuz: (4, 3),
    DType.float8_e5m2: (5, 2),
    DType.float8_e5m2fnuz: (5, 2),
    DType.float16: (5, 10),
    DType.bfloat16: (8, 7),
    DType.float32: (8, 23),
    DType.float64: (11, 52),
}

# For each dtype, the range of integers it holds exactly (float: 2**(mantissa bits + 1);
# float8 types: their largest finite value).
_EXACT_INT_RANGE: dict[DType, tuple[float, float]] = {
    DType.bool: (0, 1),
    DType.int8: (-(2**7), 2**7 - 1),
    DType.int16: (-(2**15), 2**15 - 1),
    DType.int32: (-(2**31), 2**31 - 1),
    DType.int64: (-(2**63), 2**63 - 1),
    DType.uint8: (0, 2**8 - 1),
    DType.uint16: (0, 2**16 - 1),
    DType.uint32: (0, 2**32 - 1),
    DType.uint64: (0, 2**64 - 1),
    DType.float4_e2m1fn: (-6, 6),
    DType.float8_e5m2: (-57344, 57344),
    DType.float8_e5m2fnuz: (-57344, 57344),
    DType.float8_e4m3fn: (-448, 448),
    DType.float8_e4m3fnuz: (-240, 240),
    DType.bfloat16: (-(2**8), 2**8),
    DType.float16: (-(2**11), 2**11),
    DType.float32: (-(2**24), 2**24),
    DType.float64: (-(2**53), 2**53),
}


def category(dtype: DType) -> int:
    """The promotion category: 0 bool, 1 unsigned int, 2 signed int, 3 float."""
    if dtype == DType.bool:
        return _BOOL
    if dtype.is_unsigned_integral():
        return _UINT
    if dtype.is_signed_integral():
        return _INT
    return _FLOAT


def _bits(dtype: DType) -> int:
    return 1 if dtype == DType.bool else dtype.size_in_bits


def representable(src: DType, dst: DType) -> bool:
    """Whether every value of ``src`` is exactly a value of ``dst``."""
    if src == dst or src == DType.bool:
        return True
    cs, cd = category(src), category(dst)
    if cd == _FLOAT:
        if cs == _FLOAT:
            es, ms = _FLOAT_BITS[src]
            ed, md = _FLOAT_BITS[dst]
            return ed >= es and md >= ms
        lo, hi = _EXACT_INT_RANGE[src]
        dlo, dhi = _EXACT_INT_RANGE[dst]
        return dlo <= lo and hi <= dhi
    if cs == _FLOAT or cd == _BOOL:
        return False
    if cs == _INT and cd == _UINT:
        return False
    if cs == _UINT and cd == _INT:
        return _bits(src) < _bits(dst)
    return _bits(src) <= _bits(dst)


def promote_dtypes(op: str, dtypes: Sequence[DType]) -> DType:
    """The common dtype of ``dtypes`` under the promotion rules; ValueError if none."""
    unique = list(dict.fromkeys(dtypes))
    if len(unique) == 1:
        return unique[0]
    top_category = max(category(d) for d in unique)
    top_bits = max(_bits(d) for d in unique)
    candidates = [d for d in unique if category(d) == top_category and _bits(d) == top_bits]
    for target in candidates:
        if all(representable(d, target) for d in unique):
            return target
    names = ", ".join(d.name for d in unique)
    if not candidates:
        why = (
            f"the common dtype would be a {top_bits}-bit {_CATEGORY_NAMES[top_category]}, "
            "which is none of the inputs"
        )
    else:
        why = f"{candidates[0].name} cannot represent every input exactly"
    raise ValueError(
        f"{op}: cannot promote dtypes ({names}): {why}; cast explicitly with ops.cast"
    )


# -- weak values -------------------------------------------------------------------------------


def is_weak(value: Any) -> bool:
    """Whether ``value`` is a non-graph value (scalar, array, static dim) that can promote."""
    if isinstance(value, Value):
        return False
    if isinstance(value, bool | int | float | np.number | np.bool_ | np.ndarray | StaticDim):
        return True
    return hasattr(value, "__dlpack__")


def _weak_array(op: str, value: Any) -> np.ndarray:
    if isinstance(value, StaticDim):
        value = int(value)
    if hasattr(value, "__dlpack__") and not isinstance(value, np.ndarray | np.generic):
        value = np.from_dlpack(value)
    array = np.asarray(value)
    if array.dtype == object:
        raise TypeError(f"{op}: cannot use a {type(value).__name__} as a tensor")
    return array


def weak_to_tensor(op: str, value: Any, dtype: DType, device: DeviceRef) -> TensorValue:
    """A constant of ``dtype`` on ``device`` for a weak value, checked to be exact."""
    from max.graph.ops.constant import constant

    if isinstance(value, float | np.floating) or (
        isinstance(value, np.ndarray) and value.dtype.kind in "fc"
    ):
        if not dtype.is_float():
            raise ValueError(
                f"{op}: unsafe cast: cannot promote a Python/numpy float to dtype {dtype.name}"
            )
        return constant(np.asarray(value, dtype=np.float64), dtype, device)
    if isinstance(value, int) and not isinstance(value, bool):
        lo, hi = _EXACT_INT_RANGE[dtype]
        if not lo <= value <= hi:
            raise ValueError(
                f"{op}: unsafe cast: cannot promote Python/numpy int {value} to dtype "
                f"{dtype.name}: it would lose precision"
            )
        return constant(value, dtype, device)
    array = _weak_array(op, value)
    if array.dtype.kind in "fc":
        return weak_to_tensor(op, array, dtype, device)
    if array.dtype.kind not in "biu":
        raise TypeError(f"{op}: cannot promote a {array.dtype} value to a tensor")
    if array.size:
        lo, hi = _EXACT_INT_RANGE[dtype]
        ints = array.astype(object) if array.dtype.kind != "b" else array.astype(np.uint8)
        if not (lo <= ints.min() and ints.max() <= hi):
            shown = value if array.ndim == 0 else f"array with values in [{ints.min()}, {ints.max()}]"
            raise ValueError(
                f"{op}: unsafe cast: cannot promote Python/numpy int {shown} to dtype "
                f"{dtype.name}: it would lose precision"
            )
    return constant(array, dtype, device)


def as_strong(op: str, value: Any, name: str = "x") -> TensorValue:
    """The TensorValue of an op's tensor argument; weak values raise TypeError."""
    if isinstance(value, TensorValue):
        return value
    if isinstance(value, Value):
        raise TypeError(f"{op}: {name} must be a tensor value, got {value.type}")
    if hasattr(value, "__tensorvalue__"):
        return as_strong(op, value.__tensorvalue__(), name)
    if is_weak(value):
        raise TypeError(
            f"{op}: {name} must be a graph value, got {type(value).__name__}; non-graph values "
            "would overpromote the dtype: convert explicitly with ops.constant"
        )
    raise TypeError(f"{op}: {name} must be a TensorValue, got {type(value).__name__}")


def same_device(op: str, values: Sequence[TensorValue]) -> DeviceRef:
    """The common device of ``values``; ValueError naming the devices otherwise."""
    devices = [v.device for v in values]
    for d in devices[1:]:
        if d != devices[0]:
            shown = ", ".join(str(d) for d in devices)
            raise ValueError(f"{op}: operands are on different devices ({shown}); use ops.transfer_to")
    return devices[0]


def cast_to(x: TensorValue, dtype: DType) -> TensorValue:
    """``x`` as ``dtype``: x itself if it has it, else through one ``mo.cast``."""
    if x.dtype == dtype:
        return x
    from max.graph.ops.cast import cast

    return cast(x, dtype)


def promote(op: str, operands: Sequence[Any], names: Sequence[str]) -> list[TensorValue]:
    """Converts an op's operands to graph values of one dtype on one device.

    Weak operands take the common dtype of the strong ones; strong ones are cast to it.
    """
    strong = [v for v in operands if not is_weak(v)]
    if not strong:
        raise TypeError(
            f"{op}: needs at least one graph value operand, got "
            + ", ".join(type(v).__name__ for v in operands)
            + "; convert one with ops.constant"
        )
    tensors = {i: as_strong(op, v, names[i]) for i, v in enumerate(operands) if not is_weak(v)}
    device = same_device(op, list(tensors.values()))
    dtype = promote_dtypes(op, [t.dtype for t in tensors.values()])
    out = []
    for i, v in enumerate(operands):
        if i in tensors:
            out.append(cast_to(tensors[i], dtype))
        else:
            out.append(weak_to_tensor(op, v, dtype, device))
    return out


# -- broadcasting ------------------------------------------------------------------------------


def broadcast_shapes(op: str, shapes: Sequence[Sequence[Dim]]) -> list[Dim]:
    """The numpy broadcast of ``shapes``; ValueError naming the op and shapes otherwise."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        result: Dim | None = None
        for s in shapes:
            j = i - (rank - len(s))
            if j < 0:
                continue
            d = s[j]
            if result is None or result == 1:
                result = d
            elif d == 1 or d == result:
                continue
            else:
                shown = ", ".join(_dims.shape_text(s) for s in shapes)
                raise ValueError(
                    f"{op}: shapes {shown} are not broadcast-compatible: dim {i} (from the "
                    f"left of the result) is {_dims.dim_text(result)} in one operand and "
                    f"{_dims.dim_text(d)} in another"
                )
        assert result is not None
        out.append(result)
    return out


def emit(
    op_name: str,
    operands: Sequence[TensorValue],
    dtype: DType,
    shape: Sequence[Dim],
    device: DeviceRef,
    attributes: dict[str, Any] | None = None,
) -> TensorValue:
    """Emits one MO op with a single result of the given type into the current graph.

    The result type is checked against the op's type rule (``max.dialects.mo.opdefs``), the
    same rule the MO verifier applies to files: a builder that lets a bad type through still
    raises here, at build time, rather than emitting IR the compiler would trust.
    """
    result_type = TensorType(dtype, list(shape), device)
    OPS[op_name].verify([v.type for v in operands], attributes or {}, result_type)
    return Graph.current._add_op(op_name, list(operands), [result_type], attributes)[0]
