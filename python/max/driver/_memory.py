"""Accelerator memory behind ``Tensor``: allocations, pinned host buffers, and copies.

A :class:`DeviceMemory` is one allocation on a GPU, freed (ordered on its stream) when the
last tensor viewing it is gone; memory imported through DLPack is only borrowed (its
producer's deleter runs instead). Copies take any direction; a copy into host memory waits
for the data, a copy between two GPU streams orders the destination after the source.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from max.driver import _gpu
from max.dtype import DType

if TYPE_CHECKING:
    from max.driver.device import Device, DeviceStream


def place(device: Device | DeviceStream | None, what: str) -> tuple[Device, DeviceStream | None]:
    """The device to allocate on and, on an accelerator, the stream the memory is bound to
    (the given stream, else the device's default stream)."""
    from max.driver.device import CPU, Device, DeviceStream

    stream = device if isinstance(device, DeviceStream) else None
    if stream is not None:
        device = stream.device
    if device is None:
        return CPU(), None
    if not isinstance(device, Device):
        raise TypeError(f"{what}: device must be a max.driver.Device, got {type(device).__name__}")
    if device.is_host:
        return device, None
    return device, stream or device.default_stream


def carrier(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A read-only array of ``shape`` and ``dtype`` owning no data: the layout of a tensor in
    accelerator memory (shape, rank, size and itemsize read as on the host)."""
    return np.broadcast_to(np.empty((), dtype), shape)


def device_view_dims(src_dtype: DType, shape: tuple[int, ...], dtype: DType,
                     dims: tuple[int, ...] | None) -> tuple[int, ...]:
    """The dims of a ``view`` as ``dtype`` of a contiguous accelerator tensor (its bytes
    reinterpreted; without ``dims``, the last axis rescaled).

    Raises:
        ValueError: If the bytes do not fill the view exactly.
    """
    itemsize, src_size = dtype.to_numpy().itemsize, src_dtype.to_numpy().itemsize
    nbytes = int(np.prod(shape, dtype=np.int64)) * src_size
    if dims is None:
        last = shape[-1] if shape else 1
        if (last * src_size) % itemsize:
            raise ValueError(f"view: cannot view {src_dtype.name}{list(shape)} as "
                             f"{dtype.name}: the last axis does not divide")
        dims = (*shape[:-1], last * src_size // itemsize)
    if int(np.prod(dims, dtype=np.int64)) * itemsize != nbytes:
        raise ValueError(f"view: cannot view {src_dtype.name}{list(shape)} as "
                         f"{dtype.name}{list(dims)}: {nbytes} bytes do not fill it")
    return dims


class DeviceMemory:
    """``nbytes`` of memory on an accelerator, at ``ptr``, bound to ``stream``."""

    __slots__ = ("ptr", "nbytes", "device", "stream", "_release", "__weakref__")

    def __init__(self, device: Device, nbytes: int, stream: DeviceStream) -> None:
        """Allocates ``nbytes`` on ``device``, ordered on ``stream``.

        Raises:
            GpuError: If the driver fails (out of memory: the message names the driver's
                error, e.g. ``CUDA_ERROR_OUT_OF_MEMORY``).
            ValueError: If the allocation exceeds the device's ``device_memory_limit``.
        """
        self._release: Callable[[], None] | None = None
        limit = getattr(device, "memory_limit", -1)
        used = _USED.get(device.id, 0)
        if limit >= 0 and used + nbytes > limit:
            raise ValueError(
                f"allocating {nbytes} bytes on {device} exceeds its device_memory_limit of "
                f"{limit} bytes ({used} in use)")
        runtime = _gpu.runtime()
        self.ptr = runtime.alloc(device.id, nbytes, stream.handle)
        self.nbytes = nbytes
        self.device = device
        self.stream = stream
        _USED[device.id] = used + nbytes
        ordinal, ptr, handle = device.id, self.ptr, stream.handle

        def release() -> None:
            _USED[ordinal] = _USED.get(ordinal, nbytes) - nbytes
            runtime.free(ordinal, ptr, handle)

        self._release = release

    @classmethod
    def borrow(cls, device: Device, ptr: int, nbytes: int, stream: DeviceStream,
               release: Callable[[], None]) -> DeviceMemory:
        """Memory someone else allocated (a DLPack producer); ``release`` runs at the end."""
        memory = object.__new__(cls)
        memory.ptr, memory.nbytes, memory.device, memory.stream = ptr, nbytes, device, stream
        memory._release = release
        return memory

    def __del__(self) -> None:
        release, self._release = getattr(self, "_release", None), None
        if release is not None:
            try:
                release()
            except Exception:  # noqa: BLE001 (interpreter exit, or the backend replaced)
                pass


_USED: dict[int, int] = {}  # accelerator id -> bytes allocated through DeviceMemory


def pinned_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialized array in page-locked host memory of the first accelerator (freed
    with the array)."""
    runtime = _gpu.runtime()
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    ptr = runtime.host_alloc(0, nbytes)
    raw = (ctypes.c_char * max(nbytes, 1)).from_address(ptr)
    array = np.frombuffer(raw, np.uint8, nbytes).view(dtype).reshape(shape)
    _PinnedOwner(ptr, runtime).attach(raw)
    return array


class _PinnedOwner:
    """Frees a pinned buffer once the ctypes object every view of it holds is gone."""

    def __init__(self, ptr: int, runtime: object) -> None:
        self.ptr, self.runtime = ptr, runtime

    def attach(self, raw: ctypes.Array[ctypes.c_char]) -> None:
        import weakref

        weakref.finalize(raw, self.runtime.host_free, 0, self.ptr)  # type: ignore[attr-defined]


def copy_bytes(dst: int, dst_device: Device, dst_stream: DeviceStream | None, src: int,
               src_device: Device, src_stream: DeviceStream | None, nbytes: int) -> None:
    """Copies ``nbytes`` from ``src`` to ``dst``, either of them on the host or a GPU.

    Into host memory: the copy has completed on return. Into a GPU: it is queued on
    ``dst_stream`` after the work queued on ``src_stream`` (when both are GPU streams).
    """
    runtime = _gpu.runtime()
    if dst_device.is_host:  # GPU -> host: the host reads it next
        assert src_stream is not None
        runtime.copy(src_device.id, dst, src, nbytes, src_stream.handle)
        runtime.synchronize(src_device.id, src_stream.handle)
        return
    assert dst_stream is not None
    if src_stream is not None and not src_device.is_host:
        dst_stream.wait_for(src_stream)
    runtime.copy(dst_device.id, dst, src, nbytes, dst_stream.handle)
    if src_device.is_host:  # the host buffer may go (or change) once we return
        runtime.synchronize(dst_device.id, dst_stream.handle)


__all__ = [
    "DeviceMemory", "carrier", "copy_bytes", "device_view_dims", "pinned_array", "place",
]
