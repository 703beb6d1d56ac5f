"""Reading and writing ``mo.constant`` values as numpy arrays, with MO dtypes kept exactly.

A constant's ``value`` is a DenseElementsAttr of a builtin tensor type (``tensor<2x3xf32>``,
``tensor<4xsi32>``, ``tensor<i1>``). The bindings convert most element types to numpy
directly; bf16 they cannot, so it is read from the attribute's text, which MLIR prints
exactly (decimal that round-trips, a ``0x`` bit pattern, or hex of the raw data).
"""

from __future__ import annotations

import re

import ml_dtypes
import numpy as np
from mlir import ir

from max.dialects.mo.types import MOTensorType, parse_tensor_type

# MO element types whose constants the folder reads and writes; fp8/fp4 are left alone.
NUMPY_DTYPES: dict[str, np.dtype] = {
    "i1": np.dtype(np.bool_),
    "si8": np.dtype(np.int8),
    "si16": np.dtype(np.int16),
    "si32": np.dtype(np.int32),
    "si64": np.dtype(np.int64),
    "ui8": np.dtype(np.uint8),
    "ui16": np.dtype(np.uint16),
    "ui32": np.dtype(np.uint32),
    "ui64": np.dtype(np.uint64),
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(ml_dtypes.bfloat16),
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
}

_TOKEN_RE = re.compile(r"0x[0-9A-Fa-f]+|[-+]?(?:inf|nan|\d+\.?\d*(?:[eE][-+]?\d+)?)")


def mo_type(value: ir.Value) -> MOTensorType | None:
    """The MO tensor type of ``value``, or None for any other type."""
    try:
        t = parse_tensor_type(value.type)
    except ValueError:
        return None
    return t if t.kind == "tensor" else None


def numpy_dtype(element_type: str) -> np.dtype | None:
    return NUMPY_DTYPES.get(element_type)


def builtin_element_type(element_type: str) -> ir.Type:
    """The MLIR element type for an MO dtype spelling (``si32`` -> ``si32``)."""
    return ir.Type.parse(element_type)


def _read_from_text(attr: ir.Attribute, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Elements of a DenseElementsAttr the bindings cannot convert (bf16), from its text."""
    text = str(attr)
    if not text.startswith("dense<"):
        raise ValueError(f"cannot read constant {text[:80]}")
    body = text[len("dense<") : text.rindex("> : ")]
    count = int(np.prod(shape))
    bits = np.dtype(f"u{dtype.itemsize}")
    if body.startswith('"0x'):  # raw little-endian data (or one element for a splat)
        raw = np.frombuffer(bytes.fromhex(body[3:-1]), dtype=bits).view(dtype)
    else:
        values = []
        for token in _TOKEN_RE.findall(body):
            if token.startswith("0x"):
                values.append(np.array(int(token, 16), dtype=bits).view(dtype))
            else:
                values.append(np.array(float(token)).astype(dtype))
        raw = np.array(values, dtype=dtype)
    if raw.size == 1 and count != 1:
        return np.broadcast_to(raw.reshape(()), shape)
    if raw.size != count:
        raise ValueError(f"cannot read constant {text[:80]}")
    return raw.reshape(shape)


def read_dense(attr: ir.Attribute, dtype: np.dtype) -> np.ndarray | None:
    """A DenseElementsAttr's elements as an array of ``dtype``, or None if it is not readable.

    A splat comes back as a read-only broadcast view of one element (no memory for big shapes).
    """
    if not isinstance(attr, ir.DenseElementsAttr):
        return None  # dense_resource and friends: their data is not reachable from Python
    dense = ir.DenseElementsAttr(attr)
    shaped = ir.ShapedType(dense.type)
    shape = tuple(shaped.shape)
    if dtype == NUMPY_DTYPES["bf16"]:
        return _read_from_text(dense, shape, dtype)
    if dense.is_splat:
        loc = ir.Location.unknown(dense.context)
        scalar_type = ir.RankedTensorType.get([], shaped.element_type, loc=loc)
        one = ir.DenseElementsAttr.get_splat(scalar_type, dense.get_splat_value())
        scalar = np.array(one)
        array = np.broadcast_to(scalar.reshape(()), shape)
    else:
        array = np.array(dense)
    if array.dtype != dtype:
        if array.dtype.kind in "iu" and dtype.kind in "iu" and array.itemsize == dtype.itemsize:
            array = array.view(dtype)  # signless storage of an si/ui constant
        else:
            return None
    return array


def is_splat_array(array: np.ndarray) -> bool:
    """True for the zero-stride views :func:`read_dense` returns for splats."""
    return array.size > 1 and all(s == 0 for s in array.strides)


def read_constant(op: ir.Operation) -> np.ndarray | None:
    """The value of a ``mo.constant`` as numpy, in its MO dtype; None if unreadable."""
    if op.name != "mo.constant" or "value" not in op.attributes:
        return None
    t = mo_type(op.results[0])
    dtype = numpy_dtype(t.element_type) if t is not None else None
    if t is None or dtype is None or not t.is_static:
        return None
    try:
        array = read_dense(op.attributes["value"], dtype)
    except (ValueError, TypeError):
        return None
    if array is None or array.shape != tuple(t.dims):
        return None
    return array


def dense_attr(array: np.ndarray, element_type: str) -> ir.Attribute:
    """A DenseElementsAttr of ``tensor<SHAPExELEMENT>`` holding ``array`` (a splat when
    ``array`` is a broadcast view of one element, as ``np.broadcast_to`` makes)."""
    dtype = NUMPY_DTYPES[element_type]
    shape = list(array.shape)
    element = builtin_element_type(element_type)
    if array.size == 0:
        return ir.Attribute.parse(f"dense<> : tensor<{''.join(f'{d}x' for d in shape)}{element}>")
    if array.size == 1 or is_splat_array(array):  # one element: the bindings make a splat
        data = np.ascontiguousarray(array.reshape(-1)[:1]).astype(dtype)
    else:
        data = np.ascontiguousarray(array, dtype=dtype)
    if dtype == np.bool_:
        if data.size == 1:
            packed = np.array([255 if data[0] else 0], dtype=np.uint8)
        else:
            packed = np.packbits(data, axis=None, bitorder="little")
        return ir.DenseElementsAttr.get(packed, type=element, shape=shape)
    if dtype.kind == "V" or dtype == NUMPY_DTYPES["bf16"]:
        data = data.view(np.dtype(f"u{dtype.itemsize}"))
    return ir.DenseElementsAttr.get(data, type=element, shape=shape)


def create_constant(
    array: np.ndarray, result_type: ir.Type, *, loc: ir.Location, ip: ir.InsertionPoint
) -> ir.Operation:
    """Creates ``mo.constant`` of ``result_type`` (an ``!mo.tensor``) holding ``array``."""
    t = parse_tensor_type(result_type)
    attr = dense_attr(array, t.element_type)
    return ir.Operation.create(
        "mo.constant", results=[result_type], attributes={"value": attr}, loc=loc, ip=ip
    )
