"""APIs to build inference graphs for MAX Engine with Python.

A :class:`Graph` holds one MO function; ops from :mod:`max.graph.ops` infer their result
types in Python (symbolic dims, dtype promotion, broadcasting) and emit one MO op each.
"""

from __future__ import annotations

from max.graph import ops, quantization, weights
from max.graph.dim import AlgebraicDim, Dim, DimLike, StaticDim, SymbolicDim
from max.graph.graph import Graph
from max.graph.kernel_library import KernelLibrary
from max.graph.shape import Shape, ShapeLike
from max.graph.type import BufferType, DeviceKind, DeviceRef, TensorType, Type
from max.graph.value import BufferValue, TensorValue, TensorValueLike, Value
from max.graph.weight import Weight

__all__ = [
    "AlgebraicDim",
    "BufferType",
    "BufferValue",
    "DeviceKind",
    "DeviceRef",
    "Dim",
    "DimLike",
    "Graph",
    "KernelLibrary",
    "Shape",
    "ShapeLike",
    "StaticDim",
    "SymbolicDim",
    "TensorType",
    "TensorValue",
    "TensorValueLike",
    "Type",
    "Value",
    "Weight",
    "ops",
    "quantization",
    "weights",
]
