"""``Tensor`` (also named ``Buffer``): device-resident memory with a dtype and a shape."""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from max.driver import _dlpack
from max.driver._memory import DeviceMemory, carrier, copy_bytes, device_view_dims, pinned_array, place
from max.driver.device import CPU, Device, DeviceStream
from max.dtype import DType

ShapeType = Sequence[int]

# numpy dtype -> DType, looked up on every from_numpy (a dict hit, nothing more).
_DTYPE_OF_NUMPY: dict[np.dtype, DType] = {d.to_numpy(): d for d in DType}
_BASIC_INDEX = (int, np.integer, slice, type(Ellipsis), type(None))


def _check_dtype(dtype: Any, what: str) -> DType:
    if not isinstance(dtype, DType):
        raise TypeError(f"{what}: dtype must be a max.dtype.DType, got {dtype!r}")
    return dtype


def _check_shape(shape: Any, what: str) -> tuple[int, ...]:
    if isinstance(shape, int | np.integer):
        shape = (shape,)
    try:
        dims = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(f"{what}: shape must be a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"{what}: shape must have non-negative dims, got {dims}")
    return dims


def _index(key: Any) -> tuple[Any, ...]:
    """Checks a basic (view-producing) index; adds ``...`` so ints give 0-d views."""
    key = key if isinstance(key, tuple) else (key,)
    for k in key:
        if isinstance(k, bool | np.bool_) or not isinstance(k, _BASIC_INDEX):
            raise TypeError(
                "Tensor indices must be ints, slices, Ellipsis or None (basic indexing), "
                f"got {type(k).__name__}"
            )
    return key if any(k is Ellipsis for k in key) else (*key, Ellipsis)


class Tensor:
    """Device-resident tensor representation.

    Allocates memory onto a given device with the provided shape and dtype. Tensors can
    be sliced to provide strided views of the underlying memory, but any tensors input
    into model execution must be contiguous. On the host, a tensor is backed by a numpy
    array of the dtype's numpy dtype (``ml_dtypes`` for ``bfloat16`` and ``float8``).

    Example:
        >>> from max import driver
        >>> from max.dtype import DType
        >>> t = driver.Tensor(shape=[2, 3], dtype=DType.float32)
        >>> t.shape, t.rank, t.num_elements
        ((2, 3), 2, 6)
    """

    # _array: the backing numpy array; the runtime reads its data pointer and strides. On an
    # accelerator it only carries the layout (_carrier), and _mem/_ptr hold the memory and
    # the first element's address; they are set (and read) only for accelerator tensors.
    __slots__ = ("_array", "_device", "_dtype", "_pinned", "_mem", "_ptr", "__weakref__")

    _array: np.ndarray
    _device: Device
    _dtype: DType
    _pinned: bool
    _mem: DeviceMemory
    _ptr: int

    def __init__(
        self,
        dtype: DType | np.ndarray | None = None,
        shape: ShapeType | np.ndarray | None = None,
        device: Device | DeviceStream | None = None,
        pinned: bool = False,
        *,
        stream: DeviceStream | None = None,
    ) -> None:
        """Allocates an uninitialized tensor.

        Args:
            dtype: Data type of tensor elements.
            shape: Tuple of non-negative integers denoting the tensor shape.
            device: Device to allocate tensor onto. Defaults to the CPU.
            pinned: If True, memory is page-locked (pinned). Defaults to False.
            stream: Stream to associate the tensor with (instead of ``device``).

        ``Tensor(array, device)`` (an ndarray in place of ``dtype`` or ``shape``) wraps
        the array's memory, as ``Tensor.from_numpy(array).to(device)``.

        Raises:
            TypeError: If ``dtype`` is not a ``DType`` or ``shape`` not a sequence of ints.
            ValueError: If ``shape`` has negative dims or the device is not the CPU.
        """
        device = stream if stream is not None else device
        if isinstance(dtype, np.ndarray) or (dtype is None and isinstance(shape, np.ndarray)):
            array = dtype if isinstance(dtype, np.ndarray) else shape
            if isinstance(dtype, np.ndarray) and isinstance(shape, Device | DeviceStream):
                device = shape
            source = Tensor.from_numpy(array)
            target, stream = place(device, "Tensor")
            if target.is_host:
                self._set(source._array, source._dtype, target)
            else:
                self._set_device(source._dtype, source.shape, target, stream)
                self.inplace_copy_from(source)
            return
        if dtype is None or shape is None:
            raise TypeError("Tensor() needs a dtype and a shape")
        dtype = _check_dtype(dtype, "Tensor")
        dims = _check_shape(shape, "Tensor")
        target, stream = place(device, "Tensor")
        if not target.is_host:
            self._set_device(dtype, dims, target, stream)
            return
        # Pinned (page-locked) host memory exists where an accelerator does; without one,
        # pinning changes nothing for a CPU, so it is accepted and reported.
        from max.driver.device import accelerator_count

        if pinned and accelerator_count() > 0:
            self._set(pinned_array(dims, dtype.to_numpy()), dtype, target)
        else:
            self._set(np.empty(dims, dtype.to_numpy()), dtype, target)
        self._pinned = bool(pinned)

    def _set_device(self, dtype: DType, dims: tuple[int, ...], device: Device,
                    stream: DeviceStream | None) -> None:
        """Allocates the tensor in ``device``'s memory, bound to ``stream``."""
        assert stream is not None
        self._set(carrier(dims, dtype.to_numpy()), dtype, device)
        nbytes = self._array.size * self._array.itemsize
        self._mem = DeviceMemory(device, nbytes, stream)
        self._ptr = self._mem.ptr

    @classmethod
    def _on_device(cls, dtype: DType, dims: tuple[int, ...], memory: DeviceMemory,
                   ptr: int) -> Tensor:
        """A tensor over existing accelerator memory (``ptr`` inside ``memory``)."""
        tensor = object.__new__(cls)
        tensor._set(carrier(dims, dtype.to_numpy()), dtype, memory.device)
        tensor._mem = memory
        tensor._ptr = ptr
        return tensor

    def _set(self, array: np.ndarray, dtype: DType, device: Device) -> None:
        self._array = array
        self._dtype = dtype
        self._device = device
        self._pinned = False

    @classmethod
    def _wrap(cls, array: np.ndarray, dtype: DType, device: Device | None = None) -> Tensor:
        """Wraps a host array without checks (the array's dtype must be ``dtype``'s)."""
        tensor = object.__new__(cls)
        # _set's fields, written here: this runs once per output of every model call.
        tensor._array = array
        tensor._dtype = dtype
        tensor._device = CPU() if device is None else device
        tensor._pinned = False
        return tensor

    # Construction from data.

    @classmethod
    def zeros(
        cls, shape: ShapeType, dtype: DType, device: Device | None = None, pinned: bool = False
    ) -> Tensor:
        """Allocates a tensor of zeros.

        Args:
            shape: Shape of the tensor.
            dtype: Data type of tensor elements.
            device: Device to allocate onto. Defaults to the CPU.
            pinned: If True, memory is page-locked (pinned).
        """
        tensor = cls(_check_dtype(dtype, "Tensor.zeros"), shape, device, pinned)
        if tensor._device.is_host:
            tensor._array[...] = 0
        else:
            from max.driver import _gpu

            nbytes = tensor._mem.nbytes
            _gpu.runtime().memset(tensor._device.id, tensor._ptr, 0, nbytes,
                                  tensor._mem.stream.handle)
        return tensor

    @classmethod
    def scalar(cls, value: Any, dtype: DType, device: Device | None = None) -> Tensor:
        """Creates a rank-0 tensor holding ``value`` converted to ``dtype``.

        Example:
            >>> from max.driver import Tensor
            >>> from max.dtype import DType
            >>> Tensor.scalar(3, DType.int32).item()
            3
        """
        host = cls(_check_dtype(dtype, "Tensor.scalar"), ())
        host._array[...] = value
        return host if device is None or device.is_host else host.copy(device)

    @classmethod
    def from_numpy(cls, arr: np.ndarray) -> Tensor:
        """Creates a tensor from a provided numpy array on the host device.

        The underlying data is not copied unless the array is noncontiguous (or
        read-only, or not in native byte order). If it is, a contiguous copy is returned.

        Raises:
            TypeError: If ``arr`` is not a numpy array.
            ValueError: If its dtype has no ``DType``.
        """
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(arr).__name__}")
        flags = arr.flags
        if not (flags.c_contiguous and flags.writeable and arr.dtype.isnative):
            arr = np.array(arr, dtype=arr.dtype.newbyteorder("="), order="C", copy=True)
        dtype = _DTYPE_OF_NUMPY.get(arr.dtype)
        if dtype is None:
            raise ValueError(f"from_numpy: unsupported numpy dtype {arr.dtype}")
        return cls._wrap(arr, dtype)

    @classmethod
    def from_dlpack(cls, array: Any, *, copy: bool | None = None) -> Tensor:
        """Create a tensor from an object implementing the dlpack protocol.

        This usually does not result in a copy, and the producer of the object retains
        ownership of the underlying memory. Strided producers give strided views.

        Args:
            array: A numpy array, PyTorch tensor, ``Tensor`` or other DLPack producer.
            copy: True to always copy, False to never copy (a read-only source gives a
                read-only tensor), None to copy read-only sources only.

        Accelerator memory (``kDLCUDA``/``kDLROCM`` producers, e.g. CUDA torch tensors) gives
        a tensor on that ``Accelerator``, zero copy (without accelerators: a ValueError).

        Raises:
            TypeError: If ``array`` does not implement DLPack.
            ValueError: If its memory is on a device of another kind, or its dtype has no
                ``DType``.
        """
        if isinstance(array, Tensor):
            return array.copy() if copy else array
        from max.driver.device import accelerator_count

        if _dlpack.is_device_producer(array) and accelerator_count() > 0:
            from max.driver import _dlpack_device

            tensor = _dlpack_device.import_tensor(array)
            return tensor.copy() if copy else tensor
        if isinstance(array, np.ndarray):
            arr = array
        else:
            arr = _dlpack.import_array(array)
        if copy or (copy is None and not arr.flags.writeable):
            arr = arr.copy()
        if not arr.dtype.isnative:
            raise ValueError(f"from_dlpack: non-native byte order {arr.dtype} needs a copy")
        dtype = _DTYPE_OF_NUMPY.get(arr.dtype)
        if dtype is None:
            raise ValueError(f"from_dlpack: unsupported dtype {arr.dtype}")
        return cls._wrap(arr, dtype)

    @classmethod
    def mmap(
        cls,
        filename: os.PathLike[str] | str,
        dtype: DType,
        shape: ShapeType | int,
        mode: str = "copyonwrite",
        offset: int = 0,
    ) -> Tensor:
        """Maps a file into a host tensor (``numpy.memmap``), without reading it.

        Args:
            filename: The file to map.
            dtype: Data type of the elements in the file.
            shape: Shape of the tensor.
            mode: ``r`` (read-only), ``r+`` (writes reach the file), ``w+`` (create or
                overwrite), or ``copyonwrite`` (writes stay in memory).
            offset: Byte offset of the data in the file.
        """
        dtype = _check_dtype(dtype, "Tensor.mmap")
        dims = _check_shape(shape, "Tensor.mmap")
        arr = np.memmap(filename, dtype.to_numpy(), mode, offset, dims, order="C")
        return cls._wrap(arr, dtype)

    # Properties.

    @property
    def dtype(self) -> DType:
        """DType of constituent elements in tensor."""
        return self._dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of tensor."""
        return self._array.shape

    @property
    def rank(self) -> int:
        """Tensor rank."""
        return self._array.ndim

    @property
    def num_elements(self) -> int:
        """Returns the number of elements in this tensor (1 for rank-0 tensors)."""
        return self._array.size

    @property
    def element_size(self) -> int:
        """Return the size of the element type in bytes."""
        return self._array.itemsize

    @property
    def device(self) -> Device:
        """Device on which tensor is resident."""
        return self._device

    @property
    def stream(self) -> DeviceStream:
        """Stream to which tensor is bound (on the host: its device's default stream)."""
        if self._device.is_host:
            return self._device.default_stream
        return self._mem.stream

    @property
    def is_host(self) -> bool:
        """Whether or not tensor is host-resident (True for CPU tensors)."""
        return self._device.is_host

    @property
    def pinned(self) -> bool:
        """Whether or not the underlying memory is pinned (page-locked)."""
        return self._pinned

    @property
    def is_contiguous(self) -> bool:
        """Whether or not tensor is contiguously allocated in memory.

        False for non-contiguous slices, and for slices with negative steps. Tensors in
        accelerator memory are always contiguous (they cannot be sliced).
        """
        return self._array.flags.c_contiguous or not self._device.is_host

    def _data_ptr(self) -> int:
        """Address of the first element (a device address for accelerator tensors)."""
        if not self._device.is_host:
            return self._ptr
        return self._array.__array_interface__["data"][0]

    @property
    def _nbytes(self) -> int:
        return self._array.size * self._array.itemsize

    def _require_host(self, what: str) -> None:
        if not self._device.is_host:
            raise ValueError(
                f"{what}: the tensor is in {self._device} memory, which the host cannot "
                "index; copy it with .to(CPU()) first")

    # Conversion and copies.

    def to_numpy(self) -> np.ndarray:
        """Converts the tensor to a numpy array, sharing its memory.

        Raises:
            RuntimeError: If the tensor is not on the host.
        """
        if not self._device.is_host:
            raise RuntimeError(
                f"to_numpy: the tensor is on {self._device}; move it with .to(CPU())"
            )
        return self._array

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = self.to_numpy()
        if dtype is not None and np.dtype(dtype) != array.dtype:
            return array.astype(dtype)
        return array.copy() if copy else array

    def item(self) -> Any:
        """Returns the scalar value at a given location. The return type is converted to a
        Python built-in type.

        Any tensor of one element qualifies (rank 0, or every dim 1), as numpy's ``item()``.

        Raises:
            ValueError: If the tensor does not hold exactly one element.
        """
        if self._array.size != 1:
            raise ValueError(
                f"item() needs a tensor of one element, got shape {self.shape}; index it first"
            )
        if not self._device.is_host:
            return self.to(CPU()).item()  # type: ignore[union-attr]
        value = self._array.item()
        if self._dtype.is_float() and not isinstance(value, float):
            value = float(value)  # ml_dtypes scalars -> Python floats
        return value

    def copy(self, device: Device | DeviceStream | None = None) -> Tensor:
        """Creates a deep copy on an optionally given device (or a stream's device).

        Args:
            device: The device to create the copy on. Defaults to None (same device; on an
                accelerator, the same stream).

        Copies between the host and accelerators, or between accelerators, go through the
        driver; a copy into host memory has completed on return.
        """
        if device is None:
            device = self._device if self._device.is_host else self._mem.stream
        target, stream = place(device, "copy")
        if target.is_host and self._device.is_host:
            return Tensor._wrap(self._array.copy(order="C"), self._dtype, target)
        if not self.is_contiguous:  # a strided host view: its elements, packed, first
            return self.contiguous().copy(device)
        if target.is_host:
            out = Tensor(self._dtype, self.shape)
        else:
            out = object.__new__(Tensor)
            out._set_device(self._dtype, self.shape, target, stream)
        out._copy_bytes_from(self)
        return out

    def _copy_bytes_from(self, src: Tensor) -> None:
        """Copies ``src``'s bytes (same size, both contiguous) into this tensor."""
        copy_bytes(self._data_ptr(), self._device,
                   None if self._device.is_host else self._mem.stream,
                   src._data_ptr(), src._device,
                   None if src._device.is_host else src._mem.stream, self._nbytes)

    def contiguous(self) -> Tensor:
        """Creates a contiguous copy of the parent tensor."""
        return self.copy()

    def to(
        self, device: Device | DeviceStream | Sequence[Device] | Sequence[DeviceStream]
    ) -> Tensor | list[Tensor]:
        """Return a tensor that's guaranteed to be on the given device (or devices).

        The tensor is only copied if the requested device is different from the device
        upon which the tensor is already resident.
        """
        if isinstance(device, Sequence):
            return [self.to(d) for d in device]  # type: ignore[misc]
        if isinstance(device, DeviceStream):
            if device.device == self._device and (self._device.is_host or device is self.stream):
                return self
            return self.copy(device)
        if device == self._device:
            return self
        return self.copy(device)

    def view(self, dtype: DType, shape: ShapeType | None = None) -> Tensor:
        """Return a new tensor with the given type and shape that shares the underlying memory.

        If the shape is not given, it will be deduced if possible, or a ValueError is raised.
        """
        dtype = _check_dtype(dtype, "view")
        dims = None if shape is None else _check_shape(shape, "view")
        if not self._device.is_host:
            return self._device_view(dtype, dims)
        try:
            if dims is None:
                arr = self._array.view(dtype.to_numpy())
            elif self._array.flags.c_contiguous:  # reinterpret all the bytes
                arr = self._array.reshape(-1).view(np.uint8).view(dtype.to_numpy())
                if arr.size != int(np.prod(dims)):
                    raise ValueError(f"{self._array.nbytes} bytes do not fill shape {dims}")
                arr = arr.reshape(dims)
            else:
                arr = self._array.view(dtype.to_numpy()).reshape(dims, copy=False)
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"view: cannot view {self._dtype.name}{list(self.shape)} as {dtype.name}"
                f"{'' if shape is None else list(shape)}: {e}"
            ) from None
        return Tensor._wrap(arr, dtype, self._device)

    def _device_view(self, dtype: DType, dims: tuple[int, ...] | None) -> Tensor:
        """``view`` of a (contiguous) accelerator tensor: the same bytes, reinterpreted."""
        dims = device_view_dims(self._dtype, self.shape, dtype, dims)
        return Tensor._on_device(dtype, dims, self._mem, self._ptr)

    def inplace_copy_from(self, src: Tensor) -> None:
        """Copy the contents of another tensor into this one.

        Requires that both tensors are contiguous and have the same size and dtype.

        Raises:
            ValueError: If either tensor is non-contiguous, or sizes or dtypes differ.
        """
        if self is src:
            return
        if not isinstance(src, Tensor):
            raise TypeError(f"inplace_copy_from: src must be a Tensor, got {type(src).__name__}")
        if not self.is_contiguous or not src.is_contiguous:
            raise ValueError("inplace_copy_from: both tensors must be contiguous")
        if self.num_elements != src.num_elements:
            raise ValueError(
                f"inplace_copy_from: sizes differ ({self.num_elements} vs {src.num_elements})"
            )
        if self._dtype != src._dtype:
            raise ValueError(
                f"inplace_copy_from: dtypes differ ({self._dtype.name} vs {src._dtype.name})"
            )
        if self._device.is_host and src._device.is_host:
            np.copyto(self._array.reshape(-1), src._array.reshape(-1))
        else:
            self._copy_bytes_from(src)

    # Indexing.

    def __getitem__(self, key: Any) -> Tensor:
        """Basic numpy indexing: ints, slices, ``...`` and ``None`` give views (host only)."""
        self._require_host("indexing")
        return Tensor._wrap(self._array[_index(key)], self._dtype, self._device)

    def __setitem__(self, key: Any, value: Any) -> None:
        """Writes ``value`` (a scalar, ``Tensor`` or array) into the indexed view (host only)."""
        self._require_host("indexing")
        if isinstance(value, Tensor):
            value = value._array
        self._array[_index(key)] = value

    # DLPack.

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """Exports the tensor as a DLPack capsule (zero copy), for ``np.from_dlpack`` and
        ``torch.from_dlpack``; accelerator memory as ``kDLCUDA``/``kDLROCM``."""
        if not self._device.is_host:
            from max.driver import _dlpack_device

            return _dlpack_device.export_capsule(self, stream=stream, max_version=max_version)
        return _dlpack.export_capsule(
            self._array,
            self._dtype,
            stream=stream,
            max_version=max_version,
            dl_device=dl_device,
            copy=copy,
        )

    def __dlpack_device__(self) -> tuple[int, int]:
        """The DLPack (device type, device id) of the memory: ``(1, 0)`` for the CPU,
        ``(2, id)`` for an NVIDIA GPU (``kDLCUDA``), ``(10, id)`` for an AMD GPU (``kDLROCM``)."""
        if not self._device.is_host:
            from max.driver import _dlpack_device

            return _dlpack_device.device_code(self._device), self._device.id
        return (_dlpack.KDL_CPU, 0)

    # Printing.

    def __repr__(self) -> str:
        return f"Tensor(dtype={self._dtype.name}, shape={self.shape}, device={self._device})"

    def __str__(self) -> str:
        host = self._array if self._device.is_host else self.copy(CPU())._array
        data = np.array2string(host, prefix="Tensor(")
        return (
            f"Tensor({data}, dtype={self._dtype.name}, shape={self.shape}, "
            f"device={self._device})"
        )


Buffer = Tensor
