"""Symbolic values of a graph: ``Value``, ``TensorValue`` and ``BufferValue``.

Operators and methods build ops through ``max.graph.ops`` (imported lazily: ops import this
module). A value carries its Python ``TensorType``, so type inference never re-reads MLIR.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlir import ir

from max.graph.type import BufferType, TensorType

if TYPE_CHECKING:
    from max.dtype import DType
    from max.graph.shape import Shape
    from max.graph.type import DeviceRef


def _ops() -> Any:
    from max.graph import ops

    return ops


class Value:
    """Represents a symbolic value within a Graph (an edge of the dataflow graph).

    Value is abstract; graphs hand out :class:`TensorValue` and :class:`BufferValue`.
    """

    # _graph keeps the Graph (and so its MLIR module) alive as long as one of its values is:
    # IR of a collected module is freed, and touching it would abort the process.
    __slots__ = ("_mlir_value", "_type", "_graph")

    _mlir_value: ir.Value
    _graph: Any

    @classmethod
    def from_mlir(cls, value: ir.Value) -> Value:
        """Creates a :class:`Value` from an MLIR value."""
        text = str(value.type)
        if text.startswith("!mo.buffer<"):
            return BufferValue(value)
        return TensorValue(value)

    def to_mlir(self) -> ir.Value:
        """Converts the :class:`Value` to an MLIR value."""
        return self._mlir_value

    @property
    def type(self) -> Any:
        """Returns the type of the :class:`Value` as a ``Type``."""
        return self._type

    @property
    def dtype(self) -> DType:
        """Returns the data type of the value."""
        return self._type.dtype

    @property
    def shape(self) -> Shape:
        """Returns the shape of the value."""
        return self._type.shape

    @property
    def device(self) -> DeviceRef:
        """Returns the device of the value."""
        return self._type.device

    @property
    def rank(self) -> int:
        """Returns the rank (number of dims) of the value."""
        return self._type.rank

    @property
    def tensor(self) -> TensorValue:
        """Returns the Value as a :class:`TensorValue`; raises if it is not one."""
        if not isinstance(self, TensorValue):
            raise TypeError(f"value of type {self._type} is not a tensor")
        return self

    @property
    def buffer(self) -> BufferValue:
        """Returns the Value as a :class:`BufferValue`; raises if it is not one."""
        if not isinstance(self, BufferValue):
            raise TypeError(f"value of type {self._type} is not a buffer")
        return self


class TensorValue(Value):
    """Represents a value semantic tensor within a :class:`~max.graph.Graph`.

    Args:
        value: The value to wrap: an MLIR value of ``!mo.tensor`` type or another
            :class:`TensorValue`.
    """

    __slots__ = ()
    _type: TensorType
    # numpy must hand `array + tensor_value` to our reflected operators, not broadcast over it.
    __array_ufunc__ = None

    def __init__(self, value: Any) -> None:
        if isinstance(value, TensorValue):
            self._mlir_value, self._type = value._mlir_value, value._type
            self._graph = value._graph
        elif isinstance(value, ir.Value):
            from max.graph.graph import _CURRENT_GRAPH

            self._mlir_value = value
            self._type = TensorType.from_mlir(value.type)
            self._graph = _CURRENT_GRAPH.get()
        else:
            converted = as_tensor_value(value, where="TensorValue")
            self._mlir_value, self._type = converted._mlir_value, converted._type
            self._graph = converted._graph

    @classmethod
    def _from(cls, value: ir.Value, type: TensorType, graph: Any = None) -> TensorValue:
        """Wraps an MLIR value of ``graph`` whose type the caller already knows (no re-parsing)."""
        self = cls.__new__(cls)
        self._mlir_value, self._type, self._graph = value, type, graph
        return self

    @classmethod
    def from_mlir(cls, value: ir.Value) -> TensorValue:
        """Creates a :class:`TensorValue` from an MLIR value."""
        return cls(value)

    # -- properties ----------------------------------------------------------------------------

    @property
    def type(self) -> TensorType:
        """Returns the type of the :class:`TensorValue` as a :class:`TensorType`."""
        return self._type

    @property
    def T(self) -> TensorValue:
        """Returns the tensor with its last two dimensions swapped."""
        return _ops().transpose(self, -1, -2)

    def print(self, label: str = "debug_tensor") -> None:
        """Prints detailed information about the tensor during graph execution
        (:func:`max.graph.ops.print`)."""
        _ops().print(self, label)

    def __repr__(self) -> str:
        return f"TensorValue({self._type})"

    def __hash__(self) -> int:
        return id(self._mlir_value)

    def __bool__(self) -> bool:
        raise TypeError(
            "the truth value of a graph TensorValue is not known at build time; "
            "use ops.where or compare in the compiled graph"
        )

    # -- methods -------------------------------------------------------------------------------

    def reshape(self, shape: Any) -> TensorValue:
        """Creates a new tensor with the same data but reshaped."""
        return _ops().reshape(self, shape)

    def rebind(self, shape: Any, message: str = "") -> TensorValue:
        """Rebinds the tensor to a new shape with error handling (see ``ops.rebind``)."""
        return _ops().rebind(self, shape, message)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> TensorValue:
        """Flattens the dims from ``start_dim`` to ``end_dim`` into one."""
        return _ops().flatten(self, start_dim, end_dim)

    def broadcast_to(self, shape: Any) -> TensorValue:
        """Broadcasts the tensor to a new shape."""
        return _ops().broadcast_to(self, shape)

    def cast(self, dtype: DType) -> TensorValue:
        """Casts a symbolic tensor to a different data type."""
        return _ops().cast(self, dtype)

    def permute(self, dims: list[int]) -> TensorValue:
        """Permutes the tensor's dimensions based on provided indices."""
        return _ops().permute(self, dims)

    def transpose(self, dim_1: int, dim_2: int) -> TensorValue:
        """Swaps two dimensions of the tensor."""
        return _ops().transpose(self, dim_1, dim_2)

    def to(self, device: DeviceRef) -> TensorValue:
        """Transfers the tensor to a specified device."""
        return _ops().transfer_to(self, device)

    def max(self, axis: int = -1) -> TensorValue:
        """Reduces the tensor using a max operation along ``axis`` (kept with size 1)."""
        return _ops().max(self, axis=axis)

    def min(self, axis: int = -1) -> TensorValue:
        """Reduces the tensor using a min operation along ``axis`` (kept with size 1)."""
        return _ops().min(self, axis=axis)

    def mean(self, axis: int = -1) -> TensorValue:
        """Reduces the tensor using a mean operation along ``axis`` (kept with size 1)."""
        return _ops().mean(self, axis=axis)

    def sum(self, axis: int = -1) -> TensorValue:
        """Reduces the tensor using a sum along ``axis`` (kept with size 1)."""
        return _ops().sum(self, axis=axis)

    def argmax(self, axis: int = -1) -> TensorValue:
        """Index of the maximum along ``axis`` (kept with size 1)."""
        return _ops().argmax(self, axis=axis)

    def argmin(self, axis: int = -1) -> TensorValue:
        """Index of the minimum along ``axis`` (kept with size 1)."""
        return _ops().argmin(self, axis=axis)

    def var(self, axis: int = -1) -> TensorValue:
        """Population variance along ``axis`` (kept with size 1)."""
        centered = self - self.mean(axis)
        return (centered * centered).mean(axis)

    def stdev(self, axis: int = -1) -> TensorValue:
        """Population standard deviation along ``axis`` (kept with size 1)."""
        return _ops().sqrt(self.var(axis))

    # -- operators -----------------------------------------------------------------------------

    def __getitem__(self, index: Any) -> TensorValue:
        return _ops().slice_tensor(self, index if isinstance(index, tuple) else (index,))

    def __neg__(self) -> TensorValue:
        return _ops().negate(self)

    def __abs__(self) -> TensorValue:
        return _ops().abs(self)

    def __invert__(self) -> TensorValue:
        return _ops().logical_not(self)

    def __add__(self, rhs: Any) -> TensorValue:
        return _ops().add(self, rhs)

    def __radd__(self, lhs: Any) -> TensorValue:
        return _ops().add(lhs, self)

    def __sub__(self, rhs: Any) -> TensorValue:
        return _ops().sub(self, rhs)

    def __rsub__(self, lhs: Any) -> TensorValue:
        return _ops().sub(lhs, self)

    def __mul__(self, rhs: Any) -> TensorValue:
        return _ops().mul(self, rhs)

    def __rmul__(self, lhs: Any) -> TensorValue:
        return _ops().mul(lhs, self)

    def __truediv__(self, rhs: Any) -> TensorValue:
        return _ops().div(self, rhs)

    def __rtruediv__(self, lhs: Any) -> TensorValue:
        return _ops().div(lhs, self)

    def __floordiv__(self, rhs: Any) -> TensorValue:
        return _ops().floor_div(self, rhs)

    def __rfloordiv__(self, lhs: Any) -> TensorValue:
        return _ops().floor_div(lhs, self)

    def __mod__(self, rhs: Any) -> TensorValue:
        return _ops().mod(self, rhs)

    def __rmod__(self, lhs: Any) -> TensorValue:
        return _ops().mod(lhs, self)

    def __pow__(self, rhs: Any) -> TensorValue:
        return _ops().pow(self, rhs)

    def __rpow__(self, lhs: Any) -> TensorValue:
        return _ops().pow(lhs, self)

    def __matmul__(self, rhs: Any) -> TensorValue:
        return _ops().matmul(self, rhs)

    def __rmatmul__(self, lhs: Any) -> TensorValue:
        return _ops().matmul(lhs, self)

    def __and__(self, rhs: Any) -> TensorValue:
        return _ops().logical_and(self, rhs)

    def __rand__(self, lhs: Any) -> TensorValue:
        return _ops().logical_and(lhs, self)

    def __or__(self, rhs: Any) -> TensorValue:
        return _ops().logical_or(self, rhs)

    def __ror__(self, lhs: Any) -> TensorValue:
        return _ops().logical_or(lhs, self)

    def __xor__(self, rhs: Any) -> TensorValue:
        return _ops().logical_xor(self, rhs)

    def __rxor__(self, lhs: Any) -> TensorValue:
        return _ops().logical_xor(lhs, self)

    def __eq__(self, rhs: Any) -> TensorValue:  # type: ignore[override]
        return _ops().equal(self, rhs)

    def __ne__(self, rhs: Any) -> TensorValue:  # type: ignore[override]
        return _ops().not_equal(self, rhs)

    def __gt__(self, rhs: Any) -> TensorValue:
        return _ops().greater(self, rhs)

    def __ge__(self, rhs: Any) -> TensorValue:
        return _ops().greater_equal(self, rhs)

    def __lt__(self, rhs: Any) -> TensorValue:
        return _ops().greater(rhs, self)

    def __le__(self, rhs: Any) -> TensorValue:
        return _ops().greater_equal(rhs, self)


class BufferValue(Value):
    """Represents a mutable semantic tensor within a Graph."""

    __slots__ = ()
    _type: BufferType

    def __init__(self, value: Any) -> None:
        if isinstance(value, BufferValue):
            self._mlir_value, self._type = value._mlir_value, value._type
        elif isinstance(value, ir.Value):
            self._mlir_value = value
            self._type = BufferType.from_mlir(value.type)
        else:
            raise TypeError(f"cannot make a BufferValue from {type(value).__name__}")
        self._graph = None

    @classmethod
    def from_mlir(cls, value: ir.Value) -> BufferValue:
        """Creates a :class:`BufferValue` from an MLIR buffer value."""
        return cls(value)

    @classmethod
    def _from(cls, value: ir.Value, type: BufferType, graph: Any = None) -> BufferValue:
        """Wraps an MLIR value of ``graph`` whose type the caller already knows."""
        self = cls.__new__(cls)
        self._mlir_value, self._type, self._graph = value, type, graph
        return self

    def __getitem__(self, index: Any) -> TensorValue:
        """Loads the buffer and indexes the loaded tensor (``buffer_load(self)[index]``)."""
        return _ops().buffer_load(self)[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        """Stores ``value`` into a slice of the buffer (``buffer_store_slice``)."""
        if not isinstance(index, tuple):
            index = (index,)
        _ops().buffer_store_slice(self, value, list(index))

    def print(self, label: str = "debug_buffer") -> None:
        """Prints detailed information about the buffer (its loaded contents, at run time)."""
        _ops().print(_ops().buffer_load(self), label)

    @property
    def type(self) -> BufferType:
        """Returns the type of the :class:`BufferValue` as a :class:`BufferType`."""
        return self._type


def as_tensor_value(value: Any, *, where: str) -> TensorValue:
    """A TensorValue for a value, a Python scalar, a numpy array or a DLPack array."""
    if isinstance(value, TensorValue):
        return value
    if isinstance(value, Value):
        raise TypeError(f"{where}: expected a tensor, got {value.type}")
    import numpy as np

    from max.dtype import DType
    from max.graph.type import DeviceRef

    if hasattr(value, "__dlpack__") and not isinstance(value, np.ndarray):
        value = np.from_dlpack(value)
    array = np.asarray(value)
    if array.dtype == object:
        raise TypeError(f"{where}: cannot make a tensor from {type(value).__name__}")
    if isinstance(value, float) or (array.dtype == np.float64 and not isinstance(value, np.ndarray)):
        array = array.astype(np.float32)  # a bare Python float becomes float32, as in MAX
    elif isinstance(value, int) and not isinstance(value, bool):
        array = array.astype(np.int64)
    return _ops().constant(array, DType.from_numpy(array.dtype), DeviceRef.CPU())


# What a tensor-valued argument of an op accepts: a graph value, or something ops.constant
# or a shape conversion turns into one (the reference's ``TensorValueLike``).
TensorValueLike = TensorValue | Value | Any
