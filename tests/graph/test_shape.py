"""Shape: a list of Dims, its properties and its MLIR form."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from strategies import shapes

from max.dialects.mo import make_context
from max.graph.dim import Dim, StaticDim, SymbolicDim, _parse_dim
from max.graph.shape import Shape


def test_construction_converts_dims() -> None:
    shape = Shape([1, "batch", Dim("x") + 1])
    assert isinstance(shape, list) and shape.rank == 3 and len(shape) == 3
    assert type(shape[0]) is StaticDim and type(shape[1]) is SymbolicDim
    assert shape == [1, "batch", Dim("x") + 1]
    assert Shape() == [] and Shape().rank == 0 and Shape((2, 3)) == Shape([2, 3])


def test_properties() -> None:
    shape = Shape([2, "b", 3, Dim("a") * Dim("b")])
    assert shape.static_dims == [2, 3]
    assert list(shape.parameters) == ["b", "a"]
    assert not Shape.is_static(shape) and Shape.is_static(Shape([2, 3]))
    assert Shape.is_static(Shape()) and not Shape.is_static(Shape([-1]))


def test_printing_and_slicing() -> None:
    shape = Shape([2, "batch", Dim("x") // 2])
    assert str(shape) == "[2, batch, x // 2]"
    assert repr(shape) == "Shape([Dim(2), Dim('batch'), AlgebraicDim('x // 2')])"
    assert isinstance(shape[1:], Shape) and shape[1:] == ["batch", Dim("x") // 2]
    assert shape[-1] == Dim("x") // 2


@pytest.mark.parametrize("bad", ["batch", 3, None])
def test_rejects_non_iterables(bad: object) -> None:
    with pytest.raises(TypeError, match="Shape expects an iterable of dims"):
        Shape(bad)  # type: ignore[arg-type]


def test_rejects_bad_dims() -> None:
    with pytest.raises(ValueError, match="Invalid name for symbolic dimension"):
        Shape(["not a name"])
    with pytest.raises(TypeError, match="Unsupported dimension type"):
        Shape([1.0])


def test_mlir() -> None:
    with make_context():
        attr = Shape([1, "batch", Dim("batch") * 2]).to_mlir()
        assert str(attr) == '[1, "batch", "batch * 2"]'
        assert Shape.from_mlir(attr) == [1, "batch", Dim("batch") * 2]
        assert Shape.from_mlir([3, "x + 1"]) == [3, Dim("x") + 1]
        with pytest.raises(TypeError, match="Shape.from_mlir expects an ArrayAttr"):
            Shape.from_mlir(Dim(3).to_mlir())


@settings(deadline=None)
@given(shapes)
def test_mlir_round_trip(shape: Shape) -> None:
    with make_context():
        assert Shape.from_mlir(shape.to_mlir()) == shape
    assert Shape(shape) == shape and Shape(_parse_dim(str(d)) for d in shape) == shape
