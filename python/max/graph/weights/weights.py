"""The ``Weights`` protocol, ``WeightData``, and the part the three checkpoint readers share.

A reader is a view of one hierarchical name (``weights.encoder.layer[0]`` names
``"encoder.layer.0"``) into a table that all views of the same checkpoint share: the parsed
file(s) and the arrays allocated so far. Arrays are views of the memory-mapped file; nothing
is read until it is touched.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from max.driver import DLPackArray
from max.driver import _dlpack
from max.dtype import DType
from max.graph.quantization import QuantizationEncoding
from max.graph.shape import Shape
from max.graph.type import DeviceRef
from max.graph.weight import Weight

_Self = TypeVar("_Self")


@dataclass
class WeightData:
    """Container for weight tensor data with metadata.

    ``WeightData`` encapsulates a weight tensor along with its metadata, providing utilities
    for type conversion and format compatibility. It supports the DLPack protocol for
    efficient tensor sharing between frameworks.

    Example:
        >>> import numpy as np
        >>> from max.graph.weights import WeightData
        >>> data = WeightData.from_numpy(np.ones((2, 3), np.float32), "w")
        >>> data.dtype, data.shape
        (<DType.float32: 81>, Shape([Dim(2), Dim(3)]))
    """

    data: DLPackArray
    """The weight tensor as a DLPack array."""
    name: str
    """Hierarchical name of the weight (for example, ``"model.layers.0.weight"``)."""
    dtype: DType
    """Data type of the tensor (for example, ``DType.float32``, ``DType.uint8``)."""
    shape: Shape
    """Shape of the tensor as a Shape object."""
    quantization_encoding: QuantizationEncoding | None = None
    """Optional quantization scheme applied to the weight."""

    def __post_init__(self) -> None:
        if not isinstance(self.dtype, DType):
            raise TypeError(f"WeightData {self.name!r}: dtype must be a DType, got "
                            f"{self.dtype!r}")
        if not isinstance(self.shape, Shape):
            self.shape = Shape(self.shape)

    @classmethod
    def from_numpy(cls, arr: np.ndarray, name: str) -> WeightData:
        """Create WeightData from a numpy array.

        Args:
            arr: Numpy array containing the weight data.
            name: Name to assign to this weight.

        Returns:
            A new WeightData instance with dtype and shape inferred from the numpy array.
        """
        return cls(arr, name, DType.from_numpy(arr.dtype), Shape(arr.shape))

    def to_numpy(self) -> np.ndarray:
        """The data as a numpy array, sharing its memory."""
        if isinstance(self.data, np.ndarray):
            return self.data
        return _dlpack.import_array(self.data)

    def astype(self, dtype: DType) -> WeightData:
        """Convert the weight data to a different dtype.

        This method performs actual data conversion, unlike :meth:`view` which reinterprets
        the underlying bytes (``bfloat16`` and ``float8`` through ``ml_dtypes``).

        Args:
            dtype: Target data type for conversion.

        Returns:
            A new WeightData instance with the converted data.

        Raises:
            ValueError: If the weight is quantized (its bytes are blocks, not elements).
        """
        if self.quantization_encoding is not None:
            raise ValueError(f"weight {self.name!r}: cannot convert quantized "
                             f"({self.quantization_encoding.value}) data to {dtype}; "
                             "dequantize it first")
        converted = self.to_numpy().astype(dtype.to_numpy())
        return WeightData(converted, self.name, dtype, Shape(converted.shape))

    def view(self, dtype: DType) -> WeightData:
        """Reinterpret the bytes of the data as ``dtype`` (no copy); the last dimension
        scales by the ratio of the element sizes."""
        viewed = np.ascontiguousarray(self.to_numpy())
        if viewed.ndim == 0:
            viewed = viewed.reshape(1)
        viewed = viewed.view(dtype.to_numpy())
        return WeightData(viewed, self.name, dtype, Shape(viewed.shape),
                          self.quantization_encoding)

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self.data, np.ndarray):
            return _dlpack.export_capsule(self.data, self.dtype, **kwargs)
        return self.data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        if isinstance(self.data, np.ndarray):
            return (_dlpack.KDL_CPU, 0)
        return self.data.__dlpack_device__()

    def __repr__(self) -> str:
        encoding = (f", quantization_encoding={self.quantization_encoding}"
                    if self.quantization_encoding else "")
        return f"WeightData({self.name!r}, {self.dtype}, {self.shape}{encoding})"


@runtime_checkable
class Weights(Protocol):
    """Protocol for managing and accessing model weights hierarchically.

    The Weights protocol provides a convenient interface for loading and organizing neural
    network weights. It supports hierarchical naming through attribute and index access,
    making it easy to work with complex model architectures. Weights in MAX are tensors
    backed by external memory (buffers or memory-mapped files) that remain separate from the
    compiled graph.
    """

    @property
    def name(self) -> str:
        """Get the current weight name or prefix (``weights.model.layers[0]`` names
        ``"model.layers.0"``)."""
        ...

    def __getattr__(self, attr: str) -> Any: ...

    def __getitem__(self, idx: int | str) -> Any: ...

    def items(self: _Self) -> Iterator[tuple[str, _Self]]:
        """Iterate through all weights that start with the current prefix, as (name relative
        to the prefix, weights accessor) pairs."""
        ...

    def exists(self) -> bool:
        """Check if a weight with this exact name exists."""
        ...

    def data(self) -> WeightData:
        """Get weight data with metadata.

        Raises:
            KeyError: If no weight exists at the current hierarchical name.
        """
        ...

    def allocate(self, dtype: DType | None = None, shape: Iterable[Any] | None = None,
                 quantization_encoding: QuantizationEncoding | None = None,
                 device: DeviceRef = DeviceRef.CPU()) -> Weight:
        """Create a Weight object for this tensor.

        Args:
            dtype: Data type for the weight. If ``None``, uses the original dtype.
            shape: Shape of the weight tensor. If ``None``, uses the original shape.
            quantization_encoding: Quantization scheme to apply (for example, ``Q4_K``,
                ``Q8_0``).
            device: Target device for the weight (CPU or GPU).

        Returns:
            A Weight object that can be added to a graph using ``graph.add_weight()``.
        """
        ...

    @property
    def allocated_weights(self) -> dict[str, DLPackArray]:
        """Get all previously allocated weights: a dictionary mapping weight names to their
        arrays, for the weights allocated through :meth:`allocate`."""
        ...


def _join(prefix: str, part: str) -> str:
    return f"{prefix}.{part}" if prefix else part


class _NamedWeights:
    """What the readers share: names, lookup with suggestions, validation, allocation.

    A subclass gives ``_names`` (every tensor name), ``_load(name)`` (the WeightData of an
    existing name, zero copy), ``_child(prefix)`` (a view sharing the same tables) and
    ``_source`` (the file(s), for messages).
    """

    _prefix: str
    _allocated: dict[str, DLPackArray]

    def _names(self) -> Collection[str]:
        raise NotImplementedError

    def _load(self, name: str) -> WeightData:
        raise NotImplementedError

    def _child(self: _Self, prefix: str) -> _Self:
        raise NotImplementedError

    @property
    def _source(self) -> str:
        raise NotImplementedError

    def __getattr__(self, attr: str) -> Any:
        # Dunders (copy, pickle, numpy probing) and lookups before __init__ finished are not
        # weight names.
        if (attr.startswith("__") and attr.endswith("__")) or "_prefix" not in self.__dict__:
            raise AttributeError(attr)
        return self._child(_join(self._prefix, attr))

    def __getitem__(self, idx: int | str) -> Any:
        return self._child(_join(self._prefix, str(idx)))

    @property
    def name(self) -> str:
        """The current weight name or prefix."""
        return self._prefix

    @property
    def allocated_weights(self) -> dict[str, DLPackArray]:
        """Gets the values of all weights that were allocated previously."""
        return self._allocated

    def items(self: Any) -> Iterator[tuple[str, Any]]:
        """Iterate through all allocable weights that start with the prefix.

        Yields:
            (name relative to the prefix, weights accessor) for each weight under it.
        """
        start = self._prefix + "." if self._prefix else ""
        for name in self._names():
            if name.startswith(start):
                yield name[len(start):], self._child(name)

    def exists(self) -> bool:
        """Check if a weight with this exact name exists."""
        return self._prefix in self._names()

    def data(self) -> WeightData:
        """Get weight data with metadata: the tensor (a view of the mapped file) with its
        name, dtype, shape and quantization encoding.

        Raises:
            KeyError: If no weight exists at the current hierarchical name.
        """
        if self._prefix not in self._names():
            raise KeyError(self._missing_message())
        return self._load(self._prefix)

    def raw_tensor(self) -> DLPackArray:
        """Returns the tensor of this weight, as stored (a view of the mapped file).

        Raises:
            KeyError: If no weight exists at the current hierarchical name.
        """
        return self.data().data

    @property
    def dtype(self) -> DType:
        """The current weight dtype, if this weight exists."""
        return self.data().dtype

    @property
    def shape(self) -> Shape:
        """The current weight shape, if this weight exists."""
        return self.data().shape

    @property
    def quantization_encoding(self) -> QuantizationEncoding | None:
        """The current weight quantization encoding, if this weight exists."""
        return self.data().quantization_encoding

    def allocate(self, dtype: DType | None = None, shape: Iterable[Any] | None = None,
                 quantization_encoding: QuantizationEncoding | None = None,
                 device: DeviceRef = DeviceRef.CPU()) -> Weight:
        """Creates and optionally validates a new Weight.

        The weight's value (a view of the mapped file) joins :attr:`allocated_weights`, the
        ``weights_registry`` to give ``InferenceSession.load``.

        Args:
            dtype: The dtype the weight must have in the checkpoint; ``None`` takes it.
            shape: The shape the weight must have in the checkpoint; ``None`` takes it.
            quantization_encoding: The quantization encoding of the weight.
            device: The device of the weight.

        Returns:
            A Weight named after the current hierarchical name.

        Raises:
            KeyError: If no weight exists at the current hierarchical name.
            ValueError: If ``dtype``, ``shape`` or ``quantization_encoding`` disagrees with
                the checkpoint.
        """
        data = self.data()
        self._check(data, dtype, shape)
        encoding = self._encoding_for(data, quantization_encoding)
        weight = Weight(data.name, data.dtype, data.shape, device=device,
                        quantization_encoding=encoding)
        self._set_original(weight, data)
        self._allocated[data.name] = data.data
        return weight

    # Hooks (GGUF checks encodings against the file; the others take the caller's).

    def _encoding_for(self, data: WeightData,
                      requested: QuantizationEncoding | None) -> QuantizationEncoding | None:
        return requested if requested is not None else data.quantization_encoding

    def _set_original(self, weight: Weight, data: WeightData) -> None:
        pass

    def _check(self, data: WeightData, dtype: DType | None,
               shape: Iterable[Any] | None) -> None:
        if dtype is not None and dtype != data.dtype:
            raise ValueError(f"weight {data.name!r}: dtype mismatch: expected {dtype}, the "
                             f"checkpoint {self._source} holds {data.dtype} (convert with "
                             ".data().astype(...))")
        if shape is not None and Shape(shape) != data.shape:
            raise ValueError(f"weight {data.name!r}: shape mismatch: expected "
                             f"{Shape(shape)}, the checkpoint {self._source} holds {data.shape}")

    def _missing_message(self) -> str:
        name, names = self._prefix, list(self._names())
        under = [n for n in names if n.startswith(name + ".")] if name else names
        if under:
            hint = (f"it is a prefix of {len(under)} weight(s), such as "
                    f"{', '.join(map(repr, under[:3]))}; index further")
        else:
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            hint = (f"did you mean {', '.join(map(repr, close))}?" if close
                    else f"the checkpoint holds {len(names)} weight(s)")
        return f"no weight named {name!r} in {self._source}: {hint}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._source}, prefix={self._prefix!r})"


def _lazy_import(module: str, needed_by: str, pin: str) -> Callable[[], Any]:
    """An importer of an optional dependency that names it when it is absent."""
    def load() -> Any:
        import importlib

        try:
            return importlib.import_module(module)
        except ImportError as e:
            raise ImportError(f"{needed_by} needs the `{module}` package ({pin}), which is "
                              "not installed") from e
    return load
