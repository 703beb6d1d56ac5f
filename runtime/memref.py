"""MLIR ranked memref descriptors as ctypes Structures, one class per rank.

A descriptor is ``{T* allocated, T* aligned, i64 offset, i64 sizes[rank], i64 strides[rank]}``
(docs/architecture.md, "CPU entry ABI"). Classes are made once per rank and reused: making a
ctypes Structure class costs hundreds of microseconds, filling an instance well under one.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

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


_libc = ctypes.CDLL(None)
_free = _libc.free
_free.argtypes = [ctypes.c_void_p]
_free.restype = None


class _Allocation:
    """Owns memory the compiled code allocated with ``malloc``; frees it when dropped.

    Exposes the bytes through the array interface, so that numpy arrays built on it keep it
    alive as their base. ``free`` is the model's own (it may keep large blocks for reuse:
    compiler/pipelines/scratch.py) and keeps the model's code mapped.
    """

    __slots__ = ("__array_interface__", "_allocated", "_free")

    def __init__(self, allocated: int, data: int, nbytes: int, free: Any = None) -> None:
        self._allocated = allocated
        self._free = free or _free
        self.__array_interface__ = {"data": (data, False), "shape": (nbytes,), "typestr": "|u1",
                                    "version": 3}

    def __del__(self) -> None:
        if self._allocated:
            self._free(self._allocated)
            self._allocated = 0


def adopt_allocation(desc: ctypes.Structure, dtype: np.dtype, free: Any = None) -> np.ndarray:
    """A numpy array over a memref the compiled code allocated and returned (identity
    layout), owning that memory: no copy, freed with the array by ``free`` (the model's
    ``CpuFunction.free``; libc's ``free`` if None)."""
    rank = len(desc.sizes) if hasattr(desc, "sizes") else 0
    shape = tuple(int(desc.sizes[k]) for k in range(rank))
    dtype = np.dtype(dtype)
    count = math.prod(shape)
    allocated = desc.allocated or 0
    contiguous = not rank or list(desc.strides) == contiguous_strides(shape)
    free = free or _free
    if count == 0 or not contiguous:
        if allocated:
            free(allocated)
        if count == 0:
            return np.empty(shape, dtype)
        raise RuntimeError(f"compiled code returned a non-contiguous memref (sizes {shape}, "
                           f"strides {list(desc.strides)})")
    data = (desc.aligned or 0) + int(desc.offset) * dtype.itemsize
    owner = _Allocation(allocated, data, count * dtype.itemsize, free)
    return np.asarray(owner).view(dtype).reshape(shape)
