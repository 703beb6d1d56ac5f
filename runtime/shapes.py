"""Symbolic dims: binding symbols from input shapes and evaluating algebraic dims.

A dim is an ``int``, a symbol name (``"batch"``) or an expression in Python syntax using ints,
symbol names, ``+ - * //``, unary minus and parentheses (``"batch * 2 + 1"``). Expressions are
parsed once, at load time, with :mod:`ast` and compiled into small callables.
:class:`ShapeBinder` checks a call's input shapes against a graph's dims and computes its
outputs' shapes; the CPU and GPU runtimes both use it, so their errors read the same.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence

DimFn = Callable[[Mapping[str, int]], int]

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv)
_UNARY = (ast.USub, ast.UAdd)
_NO_BUILTINS: dict = {"__builtins__": {}}


def _check(node: ast.AST, text: str, names: set[str]) -> None:
    if isinstance(node, ast.Expression):
        _check(node.body, text, names)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
        _check(node.left, text, names)
        _check(node.right, text, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
        _check(node.operand, text, names)
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        pass
    elif isinstance(node, ast.Name):
        names.add(node.id)
    else:
        raise ValueError(f"unsupported dim expression {text!r}: {ast.dump(node)}")


def is_symbol(dim: int | str) -> bool:
    """Whether ``dim`` is a plain symbol name (as opposed to an int or an expression)."""
    return isinstance(dim, str) and dim.isidentifier()


def compile_dim(text: str) -> tuple[DimFn, frozenset[str]]:
    """Compiles a dim expression into ``fn(bindings) -> int`` and the symbols it uses.

    Raises:
        ValueError: if ``text`` is not a dim expression.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"unsupported dim expression {text!r}: {e.msg}") from None
    names: set[str] = set()
    _check(tree, text, names)
    code = compile(tree, f"<dim {text}>", "eval")

    def fn(bindings: Mapping[str, int], _code=code) -> int:
        return eval(_code, _NO_BUILTINS, bindings)  # noqa: S307 (validated above)

    return fn, frozenset(names)


def format_dims(dims: Sequence[int | str]) -> str:
    """``[batch, 3]``: dims as the messages show them."""
    return "[" + ", ".join(str(d) for d in dims) + "]"


class TensorDims:
    """One tensor's dims, parsed once: where they are ints, symbols or expressions."""

    __slots__ = ("dims", "rank", "static_shape", "statics", "symbols", "exprs", "fns")

    def __init__(self, dims: Sequence[int | str]) -> None:
        self.dims = tuple(dims)
        self.rank = len(self.dims)
        self.static_shape = self.dims if all(type(d) is int for d in self.dims) else None
        self.statics = [(k, d) for k, d in enumerate(self.dims) if type(d) is int]
        self.symbols = [(k, d) for k, d in enumerate(self.dims) if is_symbol(d)]
        self.exprs = [(k, d, compile_dim(d)[0]) for k, d in enumerate(self.dims)
                      if isinstance(d, str) and not is_symbol(d)]
        # Each dim as an int or ``fn(bindings)`` (an output's shape from the symbols).
        self.fns: list[int | DimFn] = [d if type(d) is int else compile_dim(str(d))[0]
                                       for d in self.dims]


class ShapeBinder:
    """A graph's symbolic dims, for every runtime (CPU and GPU): checks the inputs' shapes,
    binds each symbol to the size its inputs give it, and computes the outputs' shapes.

    Every error is a ``ValueError`` naming the input (its index, and its name where it has
    one), the dim and the sizes, e.g. ``input 1 ('y'): dim 0 binds symbol 'batch' to 5, but
    input 0 dim 0 bound it to 2``.
    """

    def __init__(self, name: str, inputs: Sequence[Sequence[int | str]],
                 outputs: Sequence[Sequence[int | str]],
                 input_names: Sequence[str | None] = ()) -> None:
        self.name = name
        self.inputs = [TensorDims(d) for d in inputs]
        self.outputs = [TensorDims(d) for d in outputs]
        names = list(input_names) or [None] * len(self.inputs)
        self._labels = [f" ({n!r})" if n else "" for n in names]
        self.has_exprs = any(t.exprs for t in self.inputs)
        self.all_static = all(t.static_shape is not None for t in self.inputs)

    def check_input(self, i: int, shape: tuple[int, ...]) -> None:
        """Raises ValueError if ``shape`` cannot be input ``i`` (its rank or a static dim)."""
        t = self.inputs[i]
        if len(shape) != t.rank or any(shape[k] != d for k, d in t.statics):
            self._shape_error(i, shape)

    def bind(self, shapes: Sequence[tuple[int, ...]]) -> dict[str, int]:
        """The symbols' sizes given by inputs of ``shapes``, every input's shape checked:
        its rank, static dims, symbols bound once, and dims given by expressions."""
        bindings: dict[str, int] = {}
        for i, (t, shape) in enumerate(zip(self.inputs, shapes)):
            if t.static_shape is not None:
                if shape != t.static_shape:
                    self._shape_error(i, shape)
                continue
            if len(shape) != t.rank:
                self._shape_error(i, shape)
            for k, d in t.statics:
                if shape[k] != d:
                    self._shape_error(i, shape)
            for k, sym in t.symbols:
                v = shape[k]
                if bindings.setdefault(sym, v) != v:
                    self._binding_error(shapes, i, k, sym, v)
        if self.has_exprs:
            self._check_exprs(shapes, bindings)
        return bindings

    def output_shape(self, j: int, bindings: Mapping[str, int]) -> tuple[int, ...]:
        """Output ``j``'s shape with the symbols of ``bindings`` (from :meth:`bind`)."""
        t = self.outputs[j]
        if t.static_shape is not None:
            return t.static_shape
        shape = tuple([f if type(f) is int else f(bindings) for f in t.fns])
        if shape and min(shape) < 0:
            raise ValueError(f"output {j} of {self.name!r} would have negative shape {shape} "
                             f"(dims {format_dims(t.dims)} with {dict(bindings)})")
        return shape

    # Error paths, kept out of the loops above.

    def _shape_error(self, i: int, shape: tuple[int, ...]) -> None:
        t, label = self.inputs[i], self._labels[i]
        want = format_dims(t.dims)
        if len(shape) != t.rank:
            raise ValueError(f"input {i}{label}: expected rank {t.rank} (shape {want}), got "
                             f"rank {len(shape)} (shape {list(shape)})")
        for k, d in t.statics:
            if shape[k] != d:
                raise ValueError(f"input {i}{label}: dim {k} expected {d}, got {shape[k]} "
                                 f"(expected shape {want}, got {list(shape)})")
        raise AssertionError("unreachable")

    def _binding_error(self, shapes: Sequence[tuple[int, ...]], i: int, k: int, sym: str,
                       v: int) -> None:
        for i0 in range(i + 1):
            for k0, s0 in self.inputs[i0].symbols:
                if s0 == sym and (i0, k0) < (i, k):
                    raise ValueError(
                        f"input {i}{self._labels[i]}: dim {k} binds symbol {sym!r} to {v}, "
                        f"but input {i0} dim {k0} bound it to {shapes[i0][k0]}")
        raise AssertionError("unreachable")

    def _check_exprs(self, shapes: Sequence[tuple[int, ...]], bindings: dict[str, int]) -> None:
        for i, t in enumerate(self.inputs):
            for k, text, fn in t.exprs:
                try:
                    want = fn(bindings)
                except NameError as e:
                    raise ValueError(f"input {i}{self._labels[i]}: dim {k} ({text!r}) uses a "
                                     f"symbol no input binds directly: {e}") from None
                if shapes[i][k] != want:
                    raise ValueError(f"input {i}{self._labels[i]}: dim {k} expected {text} = "
                                     f"{want}, got {shapes[i][k]}")
