"""Library for graph value types.

Types map one to one onto MO types (docs/architecture.md, "MO types"):
``TensorType(DType.float32, ("batch", 3), DeviceRef.CPU())`` is
``!mo.tensor<f32, ["batch", 3], "cpu:0">``, a :class:`BufferType` is ``!mo.buffer<...>``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from typing import Any

from mlir import ir

from max.dialects.mo import types as _mo
from max.dtype import DType
from max.graph.dim import StaticDim, SymbolicDim, _parse_dim
from max.graph.shape import Shape, ShapeLike

_DTYPE_TO_MLIR: dict[DType, str] = {DType[name]: mlir for mlir, name in _mo.ELEMENT_TYPES.items()}
_MLIR_TO_DTYPE: dict[str, DType] = {mlir: dtype for dtype, mlir in _DTYPE_TO_MLIR.items()}


def _dtype_to_mlir(dtype: DType) -> str:
    """The MO element type spelling of ``dtype`` (``DType.float32`` -> ``"f32"``)."""
    if not isinstance(dtype, DType):
        raise TypeError(f"expected a max.dtype.DType, got {dtype!r} ({type(dtype).__name__})")
    try:
        return _DTYPE_TO_MLIR[dtype]
    except KeyError:
        raise ValueError(f"no MO element type for {dtype}") from None


def _dtype_from_mlir(name: str | ir.Type) -> DType:
    """The DType of an MO element type spelling (``"f32"`` -> ``DType.float32``)."""
    try:
        return _MLIR_TO_DTYPE[str(name)]
    except KeyError:
        raise ValueError(f"unknown MO element type {str(name)!r}") from None


def _require_context(what: str) -> None:
    if ir.Context.current is None:
        raise RuntimeError(
            f"{what} needs an active MLIR Context (e.g. `with max.dialects.mo.make_context():`)"
        )


class FilterLayout(enum.Enum):
    """The memory layout of a convolution filter tensor."""

    RSCF = "RSCF"
    QRSCF = "QRSCF"
    FCRS = "FCRS"
    FCQRS = "FCQRS"
    CFRS = "CFRS"

    def to_mlir(self) -> ir.StringAttr:
        """Returns an mlir Attribute (a ``StringAttr``) representing this Layout."""
        return ir.StringAttr.get(self.value)

    @staticmethod
    def from_mlir(attr: ir.StringAttr) -> FilterLayout:
        """Constructs a layout from an attribute."""
        return FilterLayout(attr.value)


class ConvInputLayout(enum.Enum):
    """The memory layout of a convolution input tensor."""

    NHWC = "NHWC"
    NCHW = "NCHW"

    def to_mlir(self) -> ir.StringAttr:
        """Returns an mlir Attribute (a ``StringAttr``) representing this Layout."""
        return ir.StringAttr.get(self.value)

    @staticmethod
    def from_mlir(attr: ir.StringAttr) -> ConvInputLayout:
        """Constructs a layout from an attribute."""
        return ConvInputLayout(attr.value)


class DeviceKind(str, enum.Enum):
    """A device type representation."""

    CPU = "cpu"
    GPU = "gpu"

    def __str__(self) -> str:
        return self.value

    @staticmethod
    def from_string(txt: str) -> DeviceKind:
        """Parses a device kind from its string representation (``"cpu"``, ``"gpu"``)."""
        try:
            return DeviceKind(txt)
        except ValueError:
            raise ValueError(f"Unknown device kind {txt!r}") from None


class DeviceRef:
    """A symbolic device representation.

    DeviceRef type representation consists of a DeviceKind and an id. This is a direct
    representation of the device attribute in mlir (``"cpu:0"``, ``"gpu:1"``).

    Example:
        >>> from max.graph.type import DeviceRef
        >>> print(DeviceRef.GPU())
        gpu:0
        >>> print(DeviceRef.CPU(id=1))
        cpu:1
    """

    __slots__ = ("device_type", "id")
    device_type: DeviceKind
    id: int

    def __init__(self, device_type: DeviceKind | str, id: int = 0) -> None:
        if isinstance(device_type, DeviceKind):
            kind = device_type
        elif isinstance(device_type, str):
            kind = DeviceKind.from_string(device_type)
        else:
            raise TypeError(
                f"DeviceRef: device_type must be a DeviceKind or 'cpu'/'gpu', got {device_type!r}"
            )
        if isinstance(id, bool) or not isinstance(id, int):
            raise TypeError(f"DeviceRef: id must be an int, got {id!r}")
        if id < 0:
            raise ValueError(f"DeviceRef: id must be non-negative, got {id}")
        object.__setattr__(self, "device_type", kind)
        object.__setattr__(self, "id", id)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("DeviceRef is immutable")

    @staticmethod
    def CPU(id: int = 0) -> DeviceRef:
        """Static Method for creating a CPU device."""
        return DeviceRef(DeviceKind.CPU, id)

    @staticmethod
    def GPU(id: int = 0) -> DeviceRef:
        """Static Method for creating a GPU device."""
        return DeviceRef(DeviceKind.GPU, id)

    def is_cpu(self) -> bool:
        """Returns true if the device is a CPU device."""
        return self.device_type is DeviceKind.CPU

    def is_gpu(self) -> bool:
        """Returns true if the device is a GPU device."""
        return self.device_type is DeviceKind.GPU

    def __str__(self) -> str:
        return f"{self.device_type.value}:{self.id}"

    def __repr__(self) -> str:
        return f"DeviceRef.{self.device_type.name}({self.id})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceRef):
            return NotImplemented
        return self.device_type is other.device_type and self.id == other.id

    def __hash__(self) -> int:
        return hash((self.device_type, self.id))

    def __reduce__(self) -> tuple[Any, ...]:
        return (DeviceRef, (self.device_type, self.id))

    def to_mlir(self) -> ir.StringAttr:
        """Returns a mlir attribute representing device: the ``StringAttr`` ``"cpu:0"``."""
        return ir.StringAttr.get(str(self))

    @staticmethod
    def from_mlir(attr: ir.StringAttr | str) -> DeviceRef:
        """Returns a device from mlir attribute (a ``StringAttr`` such as ``"gpu:1"``)."""
        text = attr.value if isinstance(attr, ir.StringAttr) else attr
        if not isinstance(text, str):
            raise TypeError(f"DeviceRef.from_mlir expects a StringAttr, got {attr!r}")
        kind, sep, index = text.partition(":")
        if not sep or not index.isdigit():
            raise ValueError(f"invalid device {text!r}: expected 'cpu:N' or 'gpu:N'")
        return DeviceRef(DeviceKind.from_string(kind), int(index))

    @staticmethod
    def from_device(device: Any) -> DeviceRef:
        """Converts a ``max.driver.Device`` (or a DeviceRef) to a DeviceRef."""
        if isinstance(device, DeviceRef):
            return device
        label, index = getattr(device, "label", None), getattr(device, "id", None)
        if label in ("cpu", "gpu") and isinstance(index, int):
            return DeviceRef(DeviceKind(label), max(index, 0))
        raise TypeError(
            f"expected a DeviceRef or a max.driver.Device, got {device!r} "
            f"({type(device).__name__})"
        )

    def to_device(self) -> Any:
        """Convert device reference to a concrete driver Device."""
        from max import driver

        if self.device_type is DeviceKind.CPU:
            return driver.CPU(self.id)
        return driver.Accelerator(self.id)


class Type:
    """Represents any possible type for Graph values.

    Every Value in the Graph has a Type, and that type is represented by an Type. This type
    may be inspected to get finer-grained types and learn more about an individual Value.
    """

    __slots__ = ()

    def to_mlir(self) -> ir.Type:
        """Converts to an ``mlir.Type`` instance (in the active Context)."""
        raise NotImplementedError

    @staticmethod
    def from_mlir(t: ir.Type) -> Type:
        """Constructs a type from an MLIR type (``!mo.tensor``, ``!mo.buffer`` or
        ``!mo.chain``)."""
        text = str(t)
        if text.startswith("!mo.tensor<"):
            return TensorType.from_mlir(t)
        if text.startswith("!mo.buffer<"):
            return BufferType.from_mlir(t)
        if text == "!mo.chain":
            return _ChainType()
        raise TypeError(f"No type found for MLIR type: {text}")


class _TensorTypeBase(Type):
    __slots__ = ("dtype", "shape", "device")
    _KIND = ""
    dtype: DType
    """The element type of the tensor value."""
    shape: Shape
    """The dimensions of the tensor value."""
    device: DeviceRef
    """The device of the tensor value."""

    def __init__(self, dtype: DType, shape: ShapeLike, device: DeviceRef | Any) -> None:
        name = type(self).__name__
        if not isinstance(dtype, DType):
            raise TypeError(
                f"{name}: dtype must be a max.dtype.DType, got {dtype!r} ({type(dtype).__name__})"
            )
        if isinstance(device, DeviceRef):
            ref = device
        else:
            try:
                ref = DeviceRef.from_device(device)
            except TypeError:
                raise TypeError(
                    f"{name}: device must be a DeviceRef (e.g. DeviceRef.CPU()) or a "
                    f"max.driver.Device, got {device!r} ({type(device).__name__})"
                ) from None
        dims = Shape(shape)  # a copy: callers often edit the shape they passed
        if any(d < 0 for d in dims.static_dims):
            raise ValueError(f"{name}: static dims must be non-negative, got shape {dims}")
        # numpy's rule (zeros aside, the bytes must fit an int64): past it, MLIR's stride
        # computation overflows and aborts the compiler.
        nbytes = dtype.size_in_bytes
        for d in dims.static_dims:
            nbytes *= d or 1
        if nbytes > 2**63 - 1:
            raise ValueError(
                f"{name}: shape {dims} of {dtype.name} is too big: its static dims hold more "
                f"than 2**63 - 1 bytes"
            )
        self.dtype, self.shape, self.device = dtype, dims, ref

    @property
    def rank(self) -> int:
        """The rank of the tensor type."""
        return len(self.shape)

    @property
    def parameters(self) -> Iterable[SymbolicDim]:
        """Lists the symbolic dimension names on which this type depends."""
        return self.shape.parameters

    def num_elements(self) -> int:
        """Counts the elements of a static-shaped tensor type.

        Raises:
            RuntimeError: If the tensor has any symbolic dimensions.
        """
        if not Shape.is_static(self.shape):
            raise RuntimeError("can't find num elements since tensor has symbolic dims")
        return math.prod(d.dim for d in self.shape)

    def cast(self, dtype: DType) -> Any:
        """Returns the type of the same shape and device with the new ``dtype``."""
        return type(self)(dtype, self.shape, self.device)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return (
            self.dtype is other.dtype  # type: ignore[attr-defined]
            and self.device == other.device  # type: ignore[attr-defined]
            and list.__eq__(self.shape, other.shape)  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((self.dtype, tuple(self.shape), self.device))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dtype={self.dtype}, shape={self.shape}, "
            f"device={self.device})"
        )

    def _mo_type(self) -> _mo.MOTensorType:
        dims = tuple(d.dim if isinstance(d, StaticDim) else str(d) for d in self.shape)
        return _mo.MOTensorType(_dtype_to_mlir(self.dtype), dims, str(self.device), self._KIND)

    def to_mlir(self) -> ir.Type:
        """Converts to an ``mlir.Type`` instance (needs an active MLIR Context)."""
        _require_context(f"{type(self).__name__}.to_mlir")
        return self._mo_type().to_mlir()

    @classmethod
    def _from_mo(cls, t: ir.Type | str) -> Any:
        parsed = _mo.parse_tensor_type(t)
        if parsed.kind != cls._KIND:
            raise TypeError(f"{cls.__name__}.from_mlir expects !mo.{cls._KIND}, got {t}")
        return cls(
            _dtype_from_mlir(parsed.element_type),
            Shape(_parse_dim(d) for d in parsed.dims),
            DeviceRef.from_mlir(parsed.device),
        )


class TensorType(_TensorTypeBase):
    """A symbolic tensor type: ``!mo.tensor<DTYPE, [DIMS], "DEVICE">``.

    This is not an eager tensor type! This contains no actual data, but instead represents
    the type of a value at some point in time during model execution: its element type
    (``dtype``), dimensions (``shape``) and the device it lives on.

    Args:
        dtype: The element type of the tensor data.
        shape: The shape dimensions of the tensor. The number of dims is the rank of the
            tensor.
        device: The device of the tensor (a DeviceRef, or a ``max.driver.Device``).

    Example:
        >>> from max.dtype import DType
        >>> from max.graph.type import DeviceRef, TensorType
        >>> tensor_type = TensorType(DType.float32, (2, 3), DeviceRef.CPU())
        >>> print(tensor_type.dtype, tensor_type.shape)
        DType.float32 [2, 3]
    """

    __slots__ = ("_layout",)
    _KIND = "tensor"

    def __init__(
        self,
        dtype: DType,
        shape: ShapeLike,
        device: DeviceRef | Any,
        _layout: FilterLayout | None = None,
    ) -> None:
        super().__init__(dtype, shape, device)
        self._layout = _layout

    @classmethod
    def from_mlir(cls, type: ir.Type | str) -> TensorType:
        """Constructs a tensor type from an MLIR type (``!mo.tensor<...>``)."""
        return cls._from_mo(type)

    def as_buffer(self) -> BufferType:
        """Returns the analogous buffer type."""
        return BufferType(self.dtype, self.shape, self.device)


class BufferType(_TensorTypeBase):
    """A symbolic buffer type: ``!mo.buffer<DTYPE, [DIMS], "DEVICE">``.

    This is a reference to a tensor that can be mutated in place.
    """

    __slots__ = ()
    _KIND = "buffer"

    @classmethod
    def from_mlir(cls, type: ir.Type | str) -> BufferType:
        """Constructs a buffer type from an MLIR type (``!mo.buffer<...>``)."""
        return cls._from_mo(type)

    def as_tensor(self) -> TensorType:
        """Returns the analogous tensor type."""
        return TensorType(self.dtype, self.shape, self.device)


class _ChainType(Type):
    """``!mo.chain``: orders side effects between ops."""

    __slots__ = ()

    def to_mlir(self) -> ir.Type:
        _require_context("_ChainType.to_mlir")
        return ir.Type.parse("!mo.chain")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ChainType)

    def __hash__(self) -> int:
        return hash(_ChainType)

    def __repr__(self) -> str:
        return "_ChainType()"

