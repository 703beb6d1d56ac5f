"""MLIR ranked memref descriptors as ctypes Structures, one class per rank.

A descriptor is ``{T* allocated, T* aligned, i64 offset, i64 sizes[rank], i64 strides[rank]}``
(docs/architecture.md, "CPU entry ABI"). Classes are made once per rank and reused: making a
ctypes Structure class costs hundreds of microseconds, filling an instance well under one.
"""

from __future__ import annotations

import ctypes

import numpy as np

_CLASSES: dict[int, type[ctypes.Structure]] = {}
_from_buffer = ctypes.c_char.from_buffer
_addressof = ctypes.addressof


def descriptor_class(rank: int) -> type[ctypes.Structure]:
    """The ctypes Structure of a rank-``rank`` memref descriptor (cached)."""
    cls = _CLASSES.get(rank)
    if cls is None:
        fields = [
            ("allocated", ctypes.c_void_p),
            ("aligned", ctypes.c_void_p),
            ("offset", ctypes.c_int64),
        ]
        if rank:
            fields += [("sizes", ctypes.c_int64 * rank), ("strides", ctypes.c_int64 * rank)]
        cls = type(f"MemRefDescriptor{rank}D", (ctypes.Structure,), {"_fields_": fields})
        _CLASSES[rank] = cls
    return cls


def contiguous_strides(shape: tuple[int, ...]) -> list[int]:
    """Row-major strides, in elements, of an array of ``shape``."""
    strides = [1] * len(shape)
    acc = 1
    for k in range(len(shape) - 1, -1, -1):
        strides[k] = acc
        acc *= shape[k]
    return strides


def data_pointer(array: np.ndarray) -> int:
    """The address of ``array``'s first element (fast path for writable, non-empty arrays)."""
    try:
        return _addressof(_from_buffer(array))
    except (TypeError, ValueError, BufferError):  # read-only or empty
        return array.ctypes.data


def set_shape(desc: ctypes.Structure, shape: tuple[int, ...]) -> None:
    """Writes ``shape`` and its row-major strides into a descriptor."""
    sizes = desc.sizes
    strides = desc.strides
    acc = 1
    for k in range(len(shape) - 1, -1, -1):
        d = shape[k]
        sizes[k] = d
        strides[k] = acc
        acc *= d
