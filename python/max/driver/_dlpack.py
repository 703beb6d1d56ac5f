"""DLPack plumbing for ``max.driver.Tensor``: the protocol, and dtype codes numpy lacks.

numpy speaks DLPack for ints, floats, complex and bool only. For ``bfloat16`` and the
``float8`` family we let numpy export (or import) a same-width unsigned-integer view and
rewrite the ``DLDataType`` inside the capsule, so that the memory is never copied and the
capsule's lifetime stays managed by its producer.
"""

from __future__ import annotations

import ctypes
from typing import Any, Protocol, runtime_checkable

import numpy as np

from max.dtype import DType

# DLDeviceType codes (dlpack.h) that name memory the host can address directly.
KDL_CPU = 1
KDL_HOST_DEVICES = frozenset({1, 3, 11, 13})  # CPU, CUDAHost, ROCMHost, CUDAManaged

# DLDataTypeCode values (dlpack.h, v1.1+).
_KDL_UINT = 1
_KDL_BFLOAT = 4

# DTypes numpy cannot export, with their DLPack (code, bits).
_EXPORT_CODES: dict[DType, tuple[int, int]] = {
    DType.bfloat16: (_KDL_BFLOAT, 16),
    DType.float8_e4m3fn: (10, 8),
    DType.float8_e4m3fnuz: (11, 8),
    DType.float8_e5m2: (12, 8),
    DType.float8_e5m2fnuz: (13, 8),
}
# DLPack (code, bits) numpy cannot import, with the numpy dtype to view the memory as.
_IMPORT_DTYPES: dict[tuple[int, int], np.dtype] = {
    code: dtype.to_numpy() for dtype, code in _EXPORT_CODES.items()
}
_UINT_OF_BITS = {8: np.dtype(np.uint8), 16: np.dtype(np.uint16)}


@runtime_checkable
class DLPackArray(Protocol):
    """Anything that implements the DLPack protocol (numpy, PyTorch, CuPy, ``Tensor``)."""

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any: ...

    def __dlpack_device__(self) -> tuple[int, int]: ...


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device_type", ctypes.c_int32),
        ("device_id", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [
        ("version_major", ctypes.c_uint32),
        ("version_minor", ctypes.c_uint32),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
        ("flags", ctypes.c_uint64),
        ("dl_tensor", _DLTensor),
    ]


_get_name = ctypes.pythonapi.PyCapsule_GetName
_get_name.restype = ctypes.c_char_p
_get_name.argtypes = [ctypes.py_object]
_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _dl_tensor(capsule: Any) -> _DLTensor:
    """The DLTensor inside an unconsumed ``dltensor``/``dltensor_versioned`` capsule."""
    name = _get_name(capsule)
    address = _get_pointer(capsule, name)
    if name == b"dltensor":  # DLManagedTensor starts with its DLTensor
        return _DLTensor.from_address(address)
    if name == b"dltensor_versioned":
        return _DLManagedTensorVersioned.from_address(address).dl_tensor
    raise BufferError(f"not an unconsumed DLPack capsule: {name!r}")


def export_capsule(
    array: np.ndarray,
    dtype: DType,
    *,
    stream: Any = None,
    max_version: tuple[int, int] | None = None,
    dl_device: tuple[int, int] | None = None,
    copy: bool | None = None,
) -> Any:
    """Exports ``array`` (of ``dtype``) as a DLPack capsule, zero copy."""
    kwargs = {"stream": stream, "max_version": max_version, "dl_device": dl_device, "copy": copy}
    code = _EXPORT_CODES.get(dtype)
    if code is None:
        if dtype is DType.float4_e2m1fn:
            raise BufferError(
                "DLPack export of float4_e2m1fn is not supported: it is stored unpacked, "
                "one element per byte, while DLPack expects packed 4-bit elements"
            )
        return array.__dlpack__(**kwargs)
    capsule = array.view(_UINT_OF_BITS[code[1]]).__dlpack__(**kwargs)
    dl_dtype = _dl_tensor(capsule).dtype
    dl_dtype.code, dl_dtype.bits = code
    return capsule


class _CapsuleHolder:
    """Hands one prepared capsule to ``np.from_dlpack``."""

    __slots__ = ("_capsule", "_device")

    def __init__(self, capsule: Any, device: tuple[int, int]) -> None:
        self._capsule = capsule
        self._device = device

    def __dlpack__(self, **_: Any) -> Any:
        return self._capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._device


def is_device_producer(obj: Any) -> bool:
    """Whether DLPack producer ``obj`` holds memory the host cannot address (a GPU's)."""
    if isinstance(obj, np.ndarray) or not hasattr(obj, "__dlpack_device__"):
        return False
    return tuple(obj.__dlpack_device__())[0] not in KDL_HOST_DEVICES


def import_array(obj: Any) -> np.ndarray:
    """Returns a numpy array sharing the memory of DLPack producer ``obj`` (host memory only).

    Raises:
        TypeError: If ``obj`` does not implement ``__dlpack__``.
        ValueError: If ``obj`` lives in memory the host cannot address.
    """
    if not hasattr(obj, "__dlpack__"):
        raise TypeError(
            f"from_dlpack: expected an object implementing __dlpack__, got {type(obj).__name__}"
        )
    device = tuple(obj.__dlpack_device__()) if hasattr(obj, "__dlpack_device__") else (KDL_CPU, 0)
    if device[0] not in KDL_HOST_DEVICES:
        raise ValueError(
            f"from_dlpack: only host memory is supported, got DLPack device {device}; "
            "copy the data to the CPU first"
        )
    try:
        capsule = obj.__dlpack__(max_version=(1, 0))
    except TypeError:  # a producer that predates DLPack 1.0 keyword arguments
        capsule = obj.__dlpack__()
    dl_dtype = _dl_tensor(capsule).dtype
    view_as = _IMPORT_DTYPES.get((dl_dtype.code, dl_dtype.bits))
    if view_as is not None and dl_dtype.lanes == 1:
        dl_dtype.code = _KDL_UINT
    array = np.from_dlpack(_CapsuleHolder(capsule, (KDL_CPU, 0)))
    return array if view_as is None else array.view(view_as)
