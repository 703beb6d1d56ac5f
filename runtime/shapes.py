"""Symbolic dims: binding symbols from input shapes and evaluating algebraic dims.

A dim is an ``int``, a symbol name (``"batch"``) or an expression in Python syntax using ints,
symbol names, ``+ - * //``, unary minus and parentheses (``"batch * 2 + 1"``). Expressions are
parsed once, at load time, with :mod:`ast` and compiled into small callables.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping

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
