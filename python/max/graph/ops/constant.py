"""``constant``: a tensor value from numpy arrays, Python scalars and (nested) lists."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np
from mlir import ir

from max.dtype import DType
from max.graph.graph import Graph
from max.graph.type import DeviceRef, TensorType, _dtype_to_mlir
from max.graph.value import TensorValue, Value

from max.graph.ops._promotion import _EXACT_INT_RANGE, emit


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, Value):
        raise TypeError(f"constant: value must be data, not a graph value ({value.type})")
    if hasattr(value, "__dlpack__") and not isinstance(value, np.ndarray | np.generic):
        return np.from_dlpack(value)
    array = np.asarray(value)
    if array.dtype.kind not in "biuf" and not _is_ml_float(array):
        raise TypeError(
            f"constant: cannot make a tensor from {type(value).__name__} "
            f"(numpy dtype {array.dtype})"
        )
    return array


def _is_ml_float(array: np.ndarray) -> bool:
    """Whether ``array`` holds an ml_dtypes float (bfloat16, float8...)."""
    try:
        return DType.from_numpy(array.dtype).is_float()
    except ValueError:
        return False


def _default_dtype(value: Any, array: np.ndarray) -> DType:
    if isinstance(value, np.ndarray | np.generic) or hasattr(value, "__dlpack__"):
        return DType.from_numpy(array.dtype)
    # A Python scalar or list: bool, int64 or float32, as MAX makes them.
    if array.dtype.kind == "b":
        return DType.bool
    if array.dtype.kind in "iu":
        return DType.int64
    return DType.float32


def _convert(array: np.ndarray, dtype: DType) -> np.ndarray:
    """``array`` as ``dtype``'s numpy type; ValueError where a value does not fit."""
    target = dtype.to_numpy()
    is_float = array.dtype.kind == "f" or _is_ml_float(array)
    if is_float and array.dtype.kind != "f":
        array = array.astype(np.float64)
    if dtype.is_float():
        with np.errstate(over="ignore", invalid="ignore"):
            out = array.astype(target)
        finite_in = np.isfinite(array.astype(np.float64)) if is_float else True
        if array.size and np.any(finite_in & ~np.isfinite(out.astype(np.float64))):
            raise ValueError(
                f"constant: a value of the constant does not fit in dtype {dtype.name} "
                f"(values in [{array.min()}, {array.max()}])"
            )
        return out
    if array.size:
        if is_float:
            if not np.all(np.isfinite(array)) or np.any(array != np.trunc(array)):
                raise ValueError(
                    f"constant: non-integral float values do not fit in dtype {dtype.name}"
                )
        lo, hi = _EXACT_INT_RANGE[dtype]
        wide = array.astype(object) if array.dtype.kind != "b" else array.astype(np.uint8)
        if not (lo <= wide.min() and wide.max() <= hi):
            raise ValueError(
                f"constant: values in [{wide.min()}, {wide.max()}] do not fit in dtype "
                f"{dtype.name} (range [{lo}, {hi}])"
            )
    return array.astype(target)


def _dense_attr(array: np.ndarray, dtype: DType) -> ir.DenseElementsAttr:
    """A DenseElementsAttr of the builtin tensor type with the MO element type."""
    element = ir.Type.parse(_dtype_to_mlir(dtype))
    shape = list(array.shape)
    array = np.ascontiguousarray(array)
    if dtype == DType.bool:
        packed = np.packbits(array.reshape(-1), bitorder="little")
        return ir.DenseElementsAttr.get(packed, type=element, shape=shape)
    if dtype.is_float() and dtype not in (DType.float16, DType.float32, DType.float64):
        # ml_dtypes arrays: hand MLIR the raw bits.
        raw = array.view(np.uint8 if array.dtype.itemsize == 1 else np.uint16)
        return ir.DenseElementsAttr.get(raw, type=element, shape=shape)
    return ir.DenseElementsAttr.get(array, type=element, shape=shape)


def constant(value: Any, dtype: DType | None = None, device: Any = None) -> TensorValue:
    """Adds a node representing a constant operation.

    The value of this constant will have the type ``TensorType`` with the same shape as
    ``value``. If ``value`` is a scalar type, it will create a ``TensorType`` with 0
    dimensions. The constant will be loaded with the specified dtype. If the constant does
    not fit within the specified dtype, an error is raised.

    Warning: loading the constant could result in precision loss. For example, loading
    ``16777217`` as a ``float32`` will result in ``16777216.0``.

    Args:
        value: The constant's value: a numpy (or DLPack) array, a Python or numpy scalar,
            or a nested sequence of numbers.
        dtype: The constant tensor's element type. Defaults to the array's dtype, or for
            Python values to ``bool``, ``int64`` or ``float32``.
        device: The device the constant lives on (``DeviceRef`` or driver ``Device``);
            defaults to the CPU.

    Returns:
        A graph value containing the constant data as an attribute.

    Raises:
        TypeError: If ``value`` is not numeric data or ``dtype`` is not a ``DType``.
        ValueError: If a value does not fit in ``dtype``.

    Example:
        >>> from max.graph import Graph, ops
        >>> from max.dtype import DType
        >>> with Graph("c") as g:
        ...     c = ops.constant([[1, 2, 3]], DType.int32)
        >>> c.type
        TensorType(dtype=DType.int32, shape=[Dim(1), Dim(3)], device=cpu:0)
    """
    array = _as_array(value)
    if dtype is None:
        dtype = _default_dtype(value, array)
    elif not isinstance(dtype, DType):
        raise TypeError(f"constant: dtype must be a max.dtype.DType, got {dtype!r}")
    ref = DeviceRef.CPU() if device is None else DeviceRef.from_device(device)
    converted = _convert(array, dtype)
    with Graph.current._context:
        attr = _dense_attr(converted, dtype)
    return emit("mo.constant", [], dtype, list(array.shape), ref, {"value": attr})


def constant_external(name: str, type: TensorType) -> TensorValue:
    """Registers an external constant (weight) in the graph of a given type.

    Two external constants with the same name and type refer to the same weight. Two
    external constants with the same name and different types are incompatible and will
    fail compilation. The value is supplied when the model is loaded:
    ``InferenceSession.load(graph, weights_registry={name: array})``.

    Args:
        name: The name of the external constant. This should be the fully-qualified weight
            name and must be unique.
        type: The type of the constant value (static dims).

    Returns:
        A tensor value of the specified type, representing the weight value associated with
        the name at compile time.
    """
    from max.dialects.mo.opdefs import OPS

    if not isinstance(name, str):
        raise TypeError(f"constant_external: name must be a str, got "
                        f"{builtins.type(name).__name__}")
    if not isinstance(type, TensorType):
        raise TypeError(f"constant_external: type must be a TensorType, got {type!r}")
    attrs = {"name": name}
    OPS["mo.constant_external"].verify([], attrs, type)
    return Graph.current._add_op("mo.constant_external", [], [type], attrs)[0]
