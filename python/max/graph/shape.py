"""Library for graph shape types."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, SupportsIndex, TypeGuard, overload

from mlir import ir

from max.graph.dim import Dim, DimLike, StaticDim, SymbolicDim


class Shape(list[Dim]):
    """A tensor shape: a list of :class:`~max.graph.dim.Dim`.

    Each element is converted with ``Dim(value)``: ints become static dims and strings
    symbolic dims. A ``Shape`` compares equal to a list of the same dims (or of the ints and
    names they equal), and prints like the dims of its MO type.

    Example:
        >>> from max.graph.shape import Shape
        >>> shape = Shape([1, "batch"])
        >>> print(shape)
        [1, batch]
        >>> shape.rank, shape.static_dims
        (2, [1])
    """

    __slots__ = ()

    def __init__(self, dims: ShapeLike = ()) -> None:
        if isinstance(dims, str | bytes) or not isinstance(dims, Iterable):
            raise TypeError(
                f"Shape expects an iterable of dims (ints, names or Dims), got {dims!r}"
            )
        super().__init__(Dim(dim) for dim in dims)

    @property
    def rank(self) -> int:
        """The number of dimensions."""
        return len(self)

    @property
    def static_dims(self) -> list[int]:
        """Returns all static dims in the shape as a list of integers."""
        return [d.dim for d in self if isinstance(d, StaticDim)]

    @property
    def parameters(self) -> Iterable[SymbolicDim]:
        """Lists the symbolic dimension names on which this shape depends."""
        seen: dict[SymbolicDim, None] = {}
        for dim in self:
            for p in dim.parameters:
                seen[p] = None
        return tuple(seen)

    @staticmethod
    def is_static(shape: Shape) -> TypeGuard[list[StaticDim]]:
        """Returns True if every dimension of ``shape`` is static and non-negative."""
        return all(isinstance(d, StaticDim) and d.dim >= 0 for d in shape)

    def to_mlir(self) -> ir.ArrayAttr:
        """The dims of the MO type as an ``ArrayAttr`` (needs an active MLIR Context)."""
        return ir.ArrayAttr.get([d.to_mlir() for d in self])

    @classmethod
    def from_mlir(cls, attr: ir.Attribute | Iterable[int | str]) -> Shape:
        """Reads a shape from an ``ArrayAttr`` of dims (or the dims of a parsed MO type)."""
        if isinstance(attr, ir.Attribute) and not isinstance(attr, ir.ArrayAttr):
            raise TypeError(f"Shape.from_mlir expects an ArrayAttr, got {attr}")
        return cls(Dim.from_mlir(d) for d in attr)  # type: ignore[arg-type]

    @overload
    def __getitem__(self, index: SupportsIndex) -> Dim: ...
    @overload
    def __getitem__(self, index: slice) -> Shape: ...
    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        return Shape(item) if isinstance(index, slice) else item

    def __str__(self) -> str:
        return "[" + ", ".join(str(d) for d in self) + "]"

    def __repr__(self) -> str:
        return f"Shape({list.__repr__(self)})"


ShapeLike = Iterable[DimLike]
"""Anything a shape accepts: an iterable of dim-like values, such as a list of ints."""
