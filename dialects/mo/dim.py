"""Library for graph dimension types.

A dim is static (an ``int``), symbolic (a name) or algebraic (an expression over symbols).
Algebraic dims are kept in one canonical form: a sum of monomials with integer coefficients,
whose factors are symbols or floor-division atoms (``a // b``, their operands canonical in
turn). Only identities that hold for every integer value of the symbols are applied, so the
canonical form always evaluates like the expression it came from.

``str(dim)`` is the MO text form of the dim (docs/architecture.md, "MO types"): Python syntax
using only ints, symbol names, ``+ - * //``, unary minus and parentheses; :func:`_parse_dim`
reads it back.
"""

from __future__ import annotations

import ast
import functools
import keyword
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from mlir import ir

from max.dialects.mo._dim_poly import (
    _Poly,
    _INT64_MIN,
    _INT64_MAX,
    _const,
    _sym,
    _constant_of,
    _add,
    _scale,
    _mul,
    _floordiv,
    _poly_str,
    _symbols,
    _rebuild,
)


def _from_poly(p: _Poly) -> Dim:
    """The Dim of a canonical polynomial: static, symbolic or algebraic."""
    c = _constant_of(p)
    if c is not None:
        return StaticDim(c)
    if len(p) == 1 and p[0][1] == 1 and len(p[0][0]) == 1 and p[0][0][0][0] == 0:
        return SymbolicDim(p[0][0][0][1])
    obj = object.__new__(AlgebraicDim)
    object.__setattr__(obj, "_poly", p)
    object.__setattr__(obj, "_str", None)
    return obj


def _coerce(value: Any) -> Dim | None:
    if isinstance(value, Dim):
        return value
    if isinstance(value, int | np.integer | str) and not isinstance(value, bool):
        return Dim(value)
    return None


class Dim:
    """A tensor dimension.

    Tensor dimensions can be one of three types:

    - **Static**: Known size
    - **Symbolic**: Unknown size but named
    - **Algebraic**: Unknown size has an algebraic expression

    In most cases, you don't need to work with a ``Dim`` directly. Instead, use conversion
    constructors: ``TensorType(DType.int64, ("batch", 10), device=DeviceRef.CPU())``.

    ``Dim(value)`` converts valid input values to Dim: an ``int`` gives a :class:`StaticDim`,
    a ``str`` (a Python identifier) a :class:`SymbolicDim`, a ``Dim`` is returned as is.

    Example:
        >>> from max.graph.dim import Dim
        >>> Dim("batch") * 5
        AlgebraicDim('batch * 5')
        >>> -Dim("x") - 4 == -(Dim("x") + 4)
        True
    """

    __slots__ = ()

    def __new__(cls, value: DimLike) -> Dim:
        """Converts valid input values to Dim."""
        if isinstance(value, Dim):
            return value
        if isinstance(value, bool):
            raise TypeError(f"Unsupported dimension type {value!r} (bool)")
        if isinstance(value, int | np.integer):
            return StaticDim(value)
        if isinstance(value, str):
            return SymbolicDim(value)
        if isinstance(value, ir.Attribute):
            return Dim.from_mlir(value)
        raise TypeError(f"Unsupported dimension type {value!r} ({type(value).__name__})")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    @property
    def _poly(self) -> _Poly:
        raise NotImplementedError

    def __index__(self) -> int:
        raise TypeError(
            "when using dims to index into a list or NumPy array, explicitly convert to int "
            "with int(dim)"
        )

    def __int__(self) -> int:
        raise TypeError(f"int({self!r}): Int conversions only supported for static dims")

    # Arithmetic. Static op static folds to a StaticDim; anything symbolic is canonicalized.
    def _binary(self, other: Any, fn: Callable[[_Poly, _Poly], _Poly], swap: bool) -> Any:
        rhs = _coerce(other)
        if rhs is None:
            return NotImplemented
        a, b = (rhs, self) if swap else (self, rhs)
        return _from_poly(fn(a._poly, b._poly))

    def __add__(self, rhs: DimLike) -> Dim:
        return self._binary(rhs, _add, False)

    def __radd__(self, lhs: DimLike) -> Dim:
        return self._binary(lhs, _add, True)

    def __sub__(self, rhs: DimLike) -> Dim:
        return self._binary(rhs, lambda p, q: _add(p, _scale(q, -1)), False)

    def __rsub__(self, lhs: DimLike) -> Dim:
        return self._binary(lhs, lambda p, q: _add(p, _scale(q, -1)), True)

    def __mul__(self, rhs: DimLike) -> Dim:
        return self._binary(rhs, _mul, False)

    def __rmul__(self, lhs: DimLike) -> Dim:
        return self._binary(lhs, _mul, True)

    def __floordiv__(self, rhs: DimLike) -> Dim:
        return self._binary(rhs, _floordiv, False)

    def __rfloordiv__(self, lhs: DimLike) -> Dim:
        return self._binary(lhs, _floordiv, True)

    def __neg__(self) -> Dim:
        return _from_poly(_scale(self._poly, -1))

    def __pos__(self) -> Dim:
        return self

    def to_mlir(self) -> ir.Attribute:
        """Creates an ``mlir.Attribute`` representing this dimension.

        This is used internally when constructing tensor MLIR types: an ``i64``
        ``IntegerAttr`` for a static dim, a ``StringAttr`` holding the name or expression
        otherwise. Needs an active MLIR Context.

        Returns:
            An ``mlir.Attribute`` in the context representing the dimension.
        """
        return ir.StringAttr.get(str(self))

    @staticmethod
    def from_mlir(attr: ir.Attribute) -> Dim:
        """Constructs a dimension from an ``mlir.Attribute``.

        Args:
            attr: The MLIR Attribute object to parse into a dimension.

        Returns:
            The dimension represented by the MLIR Attr value.
        """
        if isinstance(attr, ir.IntegerAttr):
            return StaticDim(attr.value)
        if isinstance(attr, ir.StringAttr):
            return _parse_dim(attr.value)
        if isinstance(attr, int | str | Dim):
            return _parse_dim(attr)
        raise TypeError(f"Dim.from_mlir: expected an IntegerAttr or StringAttr, got {attr}")

    @property
    def parameters(self) -> Iterable[SymbolicDim]:
        """Lists the symbolic dimension names on which this dim depends."""
        return tuple(SymbolicDim(n) for n in _symbols(self._poly, {}))

    def substitute(self, mapping: Mapping[str, DimLike]) -> Dim:
        """Returns this dim with named symbols replaced per ``mapping``.

        Args:
            mapping: A mapping from symbolic dimension name to the replacement dim (or
                dim-like value). Unmapped symbols are left intact.

        Returns:
            The dim with substitutions applied, simplified.
        """
        return Dim(_rebuild(self._poly, lambda n: Dim(mapping[n]) if n in mapping else Dim(n)))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_parse_dim, (str(self),))


class StaticDim(Dim):
    """A static tensor dimension.

    Static tensor dimensions will always have exactly the same value, and are key to good
    model performance. A ``StaticDim`` compares equal to the ``int`` of its size.

    Example:
        >>> from max.graph.dim import StaticDim
        >>> StaticDim(4) == 4
        True
    """

    __slots__ = ("dim",)
    dim: int
    """The size of the static dimension."""

    def __new__(cls, dim: int | StaticDim) -> StaticDim:
        """Converts valid input values to Dim."""
        if isinstance(dim, StaticDim):
            return dim
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer):
            raise TypeError(f"StaticDim only accepts int, got {type(dim).__name__}")
        value = int(dim)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"Dim value must be -2**63 <= dim < 2**63, got {value}")
        obj = object.__new__(cls)
        object.__setattr__(obj, "dim", value)
        return obj

    @property
    def _poly(self) -> _Poly:
        return _const(self.dim)

    def __str__(self) -> str:
        return str(self.dim)

    def __repr__(self) -> str:
        return f"Dim({self.dim})"

    def __int__(self) -> int:
        return self.dim

    def __index__(self) -> int:
        return self.dim

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StaticDim):
            return self.dim == other.dim
        if isinstance(other, int | np.integer) and not isinstance(other, bool):
            return self.dim == other
        return NotImplemented if not isinstance(other, Dim) else False

    def __hash__(self) -> int:
        return hash(self.dim)

    def __lt__(self, other: int | StaticDim) -> bool:
        return self.dim < int(other)

    def __le__(self, other: int | StaticDim) -> bool:
        return self.dim <= int(other)

    def __gt__(self, other: int | StaticDim) -> bool:
        return self.dim > int(other)

    def __ge__(self, other: int | StaticDim) -> bool:
        return self.dim >= int(other)

    # Fast paths: static op static folds without building polynomials.
    def __add__(self, rhs: DimLike) -> Dim:
        if type(rhs) is StaticDim or type(rhs) is int:
            return StaticDim(self.dim + int(rhs))
        return super().__add__(rhs)

    def __mul__(self, rhs: DimLike) -> Dim:
        if type(rhs) is StaticDim or type(rhs) is int:
            return StaticDim(self.dim * int(rhs))
        return super().__mul__(rhs)

    def to_mlir(self) -> ir.IntegerAttr:
        """Creates an ``mlir.Attribute`` (an ``i64`` ``IntegerAttr``) for this dimension."""
        return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), self.dim)

    @staticmethod
    def from_mlir(attr: ir.Attribute) -> StaticDim:
        """Constructs a ``StaticDim`` from an ``IntegerAttr``."""
        if not isinstance(attr, ir.IntegerAttr):
            raise TypeError(f"StaticDim.from_mlir only accepts an IntegerAttr, got {attr}")
        return StaticDim(attr.value)

    @property
    def parameters(self) -> Iterable[SymbolicDim]:
        """Lists the symbolic dimension names on which this dim depends."""
        return ()


def _check_name(name: str) -> str:
    if not (name.isascii() and name.isidentifier() and not keyword.iskeyword(name)):
        raise ValueError(
            f"Invalid name for symbolic dimension: {name!r} (must be a Python identifier)"
        )
    return name


class SymbolicDim(Dim):
    """A symbolic tensor dimension.

    Symbolic dimensions represent named dimensions in MO tensor types
    (``!mo.tensor<f32, ["batch", "x", 10], "cpu:0">``). They don't have a static value, but
    they allow a readable name, and they tell the compiler that two dimensions of the same
    name have the same value. A ``SymbolicDim`` compares equal to the ``str`` of its name.

    Example:
        >>> from max.graph.dim import SymbolicDim
        >>> SymbolicDim("batch") == "batch"
        True
    """

    __slots__ = ("name",)
    name: str
    """The name of the dimension."""

    def __new__(cls, name: str | SymbolicDim) -> SymbolicDim:
        """Converts valid input values to Dim."""
        if isinstance(name, SymbolicDim):
            return name
        if not isinstance(name, str):
            raise TypeError(f"SymbolicDim only accepts str, got {type(name).__name__}")
        obj = object.__new__(cls)
        object.__setattr__(obj, "name", _check_name(name))
        return obj

    @property
    def _poly(self) -> _Poly:
        return _sym(self.name)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Dim({self.name!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SymbolicDim):
            return self.name == other.name
        if isinstance(other, str):
            return self.name == other
        return NotImplemented if not isinstance(other, Dim) else False

    def __hash__(self) -> int:
        return hash(self.name)

    @staticmethod
    def from_mlir(attr: ir.Attribute) -> SymbolicDim:
        """Constructs a ``SymbolicDim`` from a ``StringAttr`` holding its name."""
        if not isinstance(attr, ir.StringAttr):
            raise TypeError(f"SymbolicDim.from_mlir only accepts a StringAttr, got {attr}")
        return SymbolicDim(attr.value)

    @property
    def parameters(self) -> Iterable[SymbolicDim]:
        """Lists the symbolic dimension names on which this dim depends."""
        return (self,)


_APPLY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "mul_no_wrap": operator.mul,
    "div": operator.floordiv,
    "floordiv": operator.floordiv,
}


class AlgebraicDim(Dim):
    """An algebraic tensor dimension to enable expressions over symbolic dimensions.

    That is, any expression over a symbolic dimension returns ``AlgebraicDim``.
    Furthermore, algebraic dimensions automatically simplify into a canonical form.

    Example:
        >>> from max.graph.dim import AlgebraicDim, Dim
        >>> isinstance(Dim("batch") * 5, AlgebraicDim)
        True
        >>> print(Dim("batch") * 5)
        batch * 5
        >>> -Dim("x") - 4 == -(Dim("x") + 4)
        True
    """

    __slots__ = ("_poly", "_str")

    def __new__(cls, value: AlgebraicDim | str | ir.StringAttr) -> AlgebraicDim:
        """Converts valid input values to Dim: an AlgebraicDim, or its expression text."""
        dim = value
        if isinstance(value, ir.StringAttr):
            dim = _parse_dim(value.value)
        elif isinstance(value, str):
            dim = _parse_dim(value)
        if not isinstance(dim, AlgebraicDim):
            raise TypeError(f"AlgebraicDim needs an algebraic expression, got {value!r}")
        return dim

    @classmethod
    def apply(cls, op: str | Callable[[Any, Any], Any], *operands: DimLike) -> Dim:
        """Applies ``op`` (``"add"``, ``"mul"``, ``"div"``... or a binary function) to the
        operands, left to right, and returns the simplified dim."""
        fn = _APPLY_OPS[op] if isinstance(op, str) else op
        return functools.reduce(fn, (Dim(x) for x in operands))

    @property
    def attr(self) -> ir.StringAttr:
        """The MLIR attribute of this dim (see :meth:`to_mlir`)."""
        return self.to_mlir()

    def __str__(self) -> str:
        text = self._str
        if text is None:
            text = _poly_str(self._poly)
            object.__setattr__(self, "_str", text)
        return text

    def __repr__(self) -> str:
        return f"AlgebraicDim({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AlgebraicDim):
            return self._poly == other._poly
        return NotImplemented if not isinstance(other, Dim) else False

    def __hash__(self) -> int:
        return hash(self._poly)

    @staticmethod
    def from_mlir(attr: ir.Attribute) -> AlgebraicDim:
        """Constructs an ``AlgebraicDim`` from a ``StringAttr`` holding its expression."""
        if not isinstance(attr, ir.StringAttr):
            raise TypeError(f"AlgebraicDim.from_mlir only accepts a StringAttr, got {attr}")
        return AlgebraicDim(attr)


DimLike = int | str | Dim | np.integer
"""Anything :class:`Dim` converts: an ``int``, a symbol name, or a ``Dim``."""

_BINOPS: dict[type, Callable[[_Poly, _Poly], _Poly]] = {
    ast.Add: _add,
    ast.Sub: lambda p, q: _add(p, _scale(q, -1)),
    ast.Mult: _mul,
    ast.FloorDiv: _floordiv,
}


def _poly_of_ast(node: ast.AST, text: str) -> _Poly:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return _const(node.value)
    if isinstance(node, ast.Name):
        return _sym(_check_name(node.id))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        lhs, rhs = _poly_of_ast(node.left, text), _poly_of_ast(node.right, text)
        return _BINOPS[type(node.op)](lhs, rhs)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _poly_of_ast(node.operand, text)
        return _scale(operand, -1) if isinstance(node.op, ast.USub) else operand
    raise ValueError(
        f"invalid dim expression {text!r}: {ast.unparse(node)!r} is not an int, a symbol "
        "name, + - * //, unary minus or parentheses"
    )


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Dim:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"invalid dim expression {text!r}: not Python syntax") from None
    return _from_poly(_poly_of_ast(tree.body, text))


def _parse_dim(value: int | str | Dim) -> Dim:
    """Reads a dim from its MO text form (``str(dim)``), an int, or a Dim.

    Inverse of ``str``: ``_parse_dim(str(d)) == d`` for every dim ``d``.
    """
    if isinstance(value, Dim):
        return value
    if isinstance(value, str):
        return _parse_text(value)
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return StaticDim(value)
    raise TypeError(f"expected a dim (int or str), got {type(value).__name__}")


def _evaluate_dim(dim: DimLike, bindings: Mapping[str, int]) -> int:
    """The value of ``dim`` (a Dim or its text form) with the symbols bound to ints."""

    def leaf(name: str) -> int:
        if name not in bindings:
            raise ValueError(f"no value bound for symbol {name!r} in dim {str(d)!r}")
        return int(bindings[name])

    d = _parse_dim(dim)  # type: ignore[arg-type]
    return int(_rebuild(d._poly, leaf))
