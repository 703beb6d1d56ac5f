"""``Weight``: a named tensor whose value is given when the model is loaded.

A weight is created outside any graph and added lazily, as ``ops.constant_external``, to the
graph it is used in (``Graph.add_weight``); its value comes from
``InferenceSession.load(graph, weights_registry={name: array})``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from mlir import ir

from max.dtype import DType
from max.graph.quantization import QuantizationEncoding
from max.graph.shape import Shape
from max.graph.type import DeviceRef, TensorType
from max.graph.value import TensorValue


class Weight(TensorValue):
    """Represents a value in a Graph that can be loaded at a later time.

    Weights can be initialized outside of a Graph and are lazily-added to the parent graph
    when used. If there is no parent graph when a weight is used, an error will be raised.

    Args:
        name: The name of the weight.
        dtype: The data type of the weight.
        shape: The shape of the weight (static dims).
        device: The device where the weight resides.
        quantization_encoding: Optional quantization encoding for the weight (a
            :class:`~max.graph.quantization.QuantizationEncoding`).
        align: Optional alignment requirement in bytes: a positive power of two.
        sharding_strategy: Optional sharding strategy for distributed execution; sharding
            is not supported here, so it must be None.
    """

    # No __slots__: a weight keeps its name and metadata beside TensorValue's slots.

    def __init__(self, name: str, dtype: DType, shape: Iterable[Any],
                 device: DeviceRef | None = None,
                 quantization_encoding: QuantizationEncoding | None = None,
                 align: int | None = None, sharding_strategy: Any = None,
                 _placeholder: bool = False, _has_alias: bool = False) -> None:
        if sharding_strategy is not None:
            raise NotImplementedError(f"Weight {name!r}: sharding is not supported")
        self.name = name
        self._type = TensorType(dtype, list(shape), device or DeviceRef.CPU())
        self.quantization_encoding = quantization_encoding
        self.align = align
        # The index of this weight among the shards of its original; None for a weight
        # that is not a shard (always, since sharding is not supported).
        self.shard_idx: int | None = None
        self._original = (self._type.dtype, self._type.shape)

    # A weight is a value of whichever graph is being built: its MLIR value is the graph's
    # mo.constant_external for this name (added on first use).
    @property
    def _mlir_value(self) -> ir.Value:  # type: ignore[override]
        from max.graph.graph import Graph

        return Graph.current.add_weight(self)._mlir_value

    @property
    def _graph(self) -> Any:  # type: ignore[override]
        from max.graph.graph import Graph

        return Graph.current

    @property
    def align(self) -> int | None:
        """The alignment requirement of the weight's data in bytes, or None."""
        return self._align

    @align.setter
    def align(self, value: int | None) -> None:
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"Weight {self.name!r}: align must be an int or None, got "
                                f"{type(value).__name__}")
            if value <= 0 or value & (value - 1):
                raise ValueError(f"Weight {self.name!r}: align must be a positive power of "
                                 f"two, got {value}")
            value = int(value)
        self._align = value

    @property
    def quantization_encoding(self) -> QuantizationEncoding | None:
        """The quantization encoding of the weight's data, or None."""
        return self._quantization_encoding

    @quantization_encoding.setter
    def quantization_encoding(self, value: QuantizationEncoding | None) -> None:
        if value is not None and not isinstance(value, QuantizationEncoding):
            raise TypeError(f"Weight {self.name!r}: quantization_encoding must be a "
                            f"QuantizationEncoding or None, got {value!r}")
        self._quantization_encoding = value

    @property
    def sharding_strategy(self) -> None:
        """Gets the weight sharding strategy (always None: sharding is not supported)."""
        return None

    @property
    def original_dtype_and_shape(self) -> tuple[DType, Shape]:
        """The original dtype and shape of this weight (a quantization encoding makes the
        weight load as ``uint8`` blocks; this keeps what it stands for)."""
        return self._original

    @original_dtype_and_shape.setter
    def original_dtype_and_shape(self, value: tuple[DType, Iterable[Any]]) -> None:
        dtype, shape = value
        self._original = (dtype, Shape(shape))

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in (
            ("quantization_encoding", self._quantization_encoding), ("align", self._align),
            ("shard_idx", self.shard_idx)) if v is not None)
        return f"Weight({self.name!r}, {self.dtype}, {list(self.shape)}, {self.device}{extra})"
