"""DLPack for tensors in accelerator memory: ``kDLCUDA`` (NVIDIA) and ``kDLROCM`` (AMD).

numpy cannot build or read capsules of device memory, so here they are made by hand: a
``DLManagedTensor`` (or ``DLManagedTensorVersioned`` for DLPack 1.x consumers) whose
deleter releases the exported tensor; an imported capsule is renamed ``used_dltensor`` and its
producer's deleter runs when the imported tensor's memory is gone. Zero copy both ways.
Streams follow the protocol: the consumer's stream waits for the producer's work.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

import numpy as np

from max.driver import _gpu
from max.driver._dlpack import (
    _IMPORT_DTYPES,
    _DLManagedTensorVersioned,
    _DLTensor,
)
from max.dtype import DType

if TYPE_CHECKING:
    from max.driver.device import Device
    from max.driver.tensor import Tensor

KDL_CUDA = 2
KDL_ROCM = 10
_CODES = {"cuda": KDL_CUDA, "hip": KDL_ROCM}
_NAMES = {KDL_CUDA: "kDLCUDA", KDL_ROCM: "kDLROCM"}
_EXPORT = {DType.bfloat16: (4, 16), DType.float8_e4m3fn: (10, 8), DType.float8_e4m3fnuz: (11, 8),
           DType.float8_e5m2: (12, 8), DType.float8_e5m2fnuz: (13, 8), DType.bool: (6, 8)}
_NUMPY_KINDS = {"i": 0, "u": 1, "f": 2, "b": 6}


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


_DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
# Fresh function objects (ctypes.pythonapi's attributes are shared with _dlpack's argtypes).
_new = ctypes.pythonapi["PyCapsule_New"]
_new.restype = ctypes.py_object
_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_is_valid = ctypes.pythonapi["PyCapsule_IsValid"]
_is_valid.restype = ctypes.c_int
_is_valid.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_pointer_raw = ctypes.pythonapi["PyCapsule_GetPointer"]
_pointer_raw.restype = ctypes.c_void_p
_pointer_raw.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_get_name = ctypes.pythonapi["PyCapsule_GetName"]
_get_name.restype = ctypes.c_char_p
_get_name.argtypes = [ctypes.py_object]
_get_pointer = ctypes.pythonapi["PyCapsule_GetPointer"]
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_set_name = ctypes.pythonapi["PyCapsule_SetName"]
_set_name.restype = ctypes.c_int
_set_name.argtypes = [ctypes.py_object, ctypes.c_char_p]

_LEGACY, _VERSIONED = b"dltensor", b"dltensor_versioned"
_USED = {_LEGACY: b"used_dltensor", _VERSIONED: b"used_dltensor_versioned"}
# Address of each exported managed tensor -> what it keeps alive (tensor, struct, arrays).
_live: dict[int, tuple[Any, ...]] = {}


@_DELETER
def _delete(managed: int) -> None:
    _live.pop(managed, None)


@_DESTRUCTOR
def _destroy_capsule(capsule: int) -> None:
    """An unconsumed capsule's destructor: the managed tensor was never taken, release it."""
    for name in (_LEGACY, _VERSIONED):
        if _is_valid(capsule, name):
            _live.pop(_pointer_raw(capsule, name) or 0, None)


def device_code(device: Device) -> int:
    """The DLPack device type of an accelerator: ``kDLCUDA`` (2) or ``kDLROCM`` (10)."""
    return _CODES[device.api]


def _dl_dtype(dtype: DType) -> tuple[int, int]:
    if dtype in _EXPORT:
        return _EXPORT[dtype]
    np_dtype = dtype.to_numpy()
    if np_dtype.kind not in _NUMPY_KINDS:
        raise BufferError(f"DLPack export of {dtype.name} is not supported")
    return _NUMPY_KINDS[np_dtype.kind], np_dtype.itemsize * 8


def export_capsule(tensor: Tensor, *, stream: Any = None,
                   max_version: tuple[int, int] | None = None) -> Any:
    """A DLPack capsule of an accelerator tensor's memory (zero copy).

    ``stream``: the consumer's stream (an int handle; 1 and 2 are CUDA's legacy and
    per-thread default streams), made to wait for the tensor's stream; ``None``: the tensor's
    stream is synchronized; -1: no ordering.
    """
    handle = tensor.stream.handle
    ordinal = tensor.device.id
    if stream is None:
        tensor.stream.synchronize()
    elif stream != -1 and int(stream) != handle:
        _gpu.runtime().wait(ordinal, int(stream), handle)
    rank = tensor.rank
    shape = (ctypes.c_int64 * max(rank, 1))(*tensor.shape)
    strides = (ctypes.c_int64 * max(rank, 1))(*_row_major(tensor.shape))
    code, bits = _dl_dtype(tensor.dtype)
    versioned = max_version is not None and max_version[0] >= 1
    managed: Any = _DLManagedTensorVersioned() if versioned else _DLManagedTensor()
    dl = managed.dl_tensor
    dl.data = tensor._data_ptr()
    dl.device_type = device_code(tensor.device)
    dl.device_id = ordinal
    dl.ndim = rank
    dl.dtype.code, dl.dtype.bits, dl.dtype.lanes = code, bits, 1
    dl.shape = ctypes.cast(shape, ctypes.POINTER(ctypes.c_int64))
    dl.strides = ctypes.cast(strides, ctypes.POINTER(ctypes.c_int64))
    dl.byte_offset = 0
    if versioned:
        managed.version_major, managed.version_minor, managed.flags = 1, 0, 0
    managed.deleter = ctypes.cast(_delete, ctypes.c_void_p).value
    address = ctypes.addressof(managed)
    managed.manager_ctx = address
    _live[address] = (tensor, managed, shape, strides)
    name = _VERSIONED if versioned else _LEGACY
    return _new(address, name, ctypes.cast(_destroy_capsule, ctypes.c_void_p).value)


def _row_major(shape: tuple[int, ...]) -> list[int]:
    strides, acc = [0] * len(shape), 1
    for k in range(len(shape) - 1, -1, -1):
        strides[k] = acc
        acc *= shape[k]
    return strides


def _dtype_of(code: int, bits: int, lanes: int) -> DType:
    from max.driver.tensor import _DTYPE_OF_NUMPY

    kinds = {0: "int", 1: "uint", 2: "float"}
    np_dtype: np.dtype | None = _IMPORT_DTYPES.get((code, bits))
    if np_dtype is None and code == 6 and bits == 8:
        np_dtype = np.dtype(np.bool_)
    elif np_dtype is None and code in kinds:
        try:
            np_dtype = np.dtype(f"{kinds[code]}{bits}")
        except TypeError:
            np_dtype = None
    dtype = _DTYPE_OF_NUMPY.get(np_dtype) if np_dtype is not None and lanes == 1 else None
    if dtype is None:
        raise ValueError(f"from_dlpack: unsupported DLPack dtype (code {code}, bits {bits}, "
                         f"lanes {lanes})")
    return dtype


def import_tensor(obj: Any) -> Tensor:
    """A tensor over the accelerator memory of DLPack producer ``obj`` (zero copy).

    Raises:
        ValueError: If the memory is on another kind of device than this system's
            accelerators, is strided, or has a dtype without a ``DType``.
        RuntimeError: If there is no accelerator.
    """
    from max.driver._memory import DeviceMemory
    from max.driver.device import Accelerator
    from max.driver.tensor import Tensor

    kind, ordinal = (int(v) for v in obj.__dlpack_device__())
    accelerator = Accelerator(ordinal)
    if kind != device_code(accelerator):
        raise ValueError(f"from_dlpack: memory of DLPack device type {kind} "
                         f"({_NAMES.get(kind, 'unknown')}) on a {accelerator.api} system")
    stream = accelerator.default_stream
    try:
        capsule = obj.__dlpack__(stream=stream.handle, max_version=(1, 0))
    except TypeError:  # a producer that predates DLPack 1.0 keyword arguments
        capsule = obj.__dlpack__(stream=stream.handle)
    name = _get_name(capsule)
    address = _get_pointer(capsule, name)
    if name == _LEGACY:
        managed: Any = _DLManagedTensor.from_address(address)
    elif name == _VERSIONED:
        managed = _DLManagedTensorVersioned.from_address(address)
    else:
        raise BufferError(f"from_dlpack: not an unconsumed DLPack capsule: {name!r}")
    dl = managed.dl_tensor
    dims = tuple(dl.shape[k] for k in range(dl.ndim))
    if dl.strides:
        strides = [dl.strides[k] for k in range(dl.ndim)]
        if any(s != r and d != 1 for s, r, d in zip(strides, _row_major(dims), dims)):
            raise ValueError(f"from_dlpack: strided accelerator memory (shape {dims}, strides "
                             f"{strides}) is not supported; make it contiguous first")
    dtype = _dtype_of(dl.dtype.code, dl.dtype.bits, dl.dtype.lanes)
    ptr = (dl.data or 0) + dl.byte_offset
    nbytes = int(np.prod(dims, dtype=np.int64)) * dtype.to_numpy().itemsize
    _set_name(capsule, _USED[name])  # consumed: its deleter is ours to call
    deleter = _DELETER(managed.deleter) if managed.deleter else None

    def release() -> None:
        if deleter is not None:
            stream.synchronize()  # our queued work on it done before the producer reuses it
            deleter(address)

    memory = DeviceMemory.borrow(accelerator, ptr, nbytes, stream, release)
    return Tensor._on_device(dtype, dims, memory, ptr)


__all__ = ["KDL_CUDA", "KDL_ROCM", "device_code", "export_capsule", "import_tensor"]
