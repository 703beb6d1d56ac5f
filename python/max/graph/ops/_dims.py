"""Dim arithmetic for shape inference: dims as polynomials over their symbols.

A dim is read through its text form (the MO contract: an int, a symbol name, or an expression
in Python syntax with ``+ - * //``) into a polynomial with integer coefficients, so that
builders can decide equality (``batch * 2 == 2 * batch``), multiply dims (element counts),
add them (concat) and divide them exactly (reshape's ``-1``) without depending on how the
:class:`~max.graph.dim.Dim` classes canonicalize. A ``//`` that does not divide exactly stays
an opaque atom. Results go back to :class:`Dim` objects through the Dim algebra.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from typing import Any

from max.graph.dim import Dim, StaticDim

# A monomial is a sorted tuple of atom names (repeats for powers); a polynomial maps
# monomials to non-zero integer coefficients. The empty monomial is the constant term.
Monomial = tuple[str, ...]
Poly = dict[Monomial, int]


def as_dim(value: Any, *, where: str) -> Dim:
    """Converts an int, str or Dim to a Dim; raises TypeError naming ``where`` otherwise."""
    if isinstance(value, Dim):
        return value
    if isinstance(value, bool) or not isinstance(value, int | str) and not _is_np_int(value):
        raise TypeError(f"{where}: a dim must be an int, str or Dim, got {value!r}")
    return Dim(int(value) if not isinstance(value, str) else value)


def _is_np_int(value: Any) -> bool:
    import numpy as np

    return isinstance(value, np.integer)


def static_value(dim: Dim) -> int | None:
    """The size of a static dim, else None."""
    if isinstance(dim, StaticDim):
        return int(dim.dim)
    return None


def dim_text(dim: Dim) -> str:
    """The Python-syntax text of a dim (as it appears in an MO type)."""
    value = static_value(dim)
    if value is not None:
        return str(value)
    name = getattr(dim, "name", None)
    if isinstance(name, str):
        return name
    return str(dim)


def to_poly(dim: Dim | int | str) -> Poly:
    """Reads a dim into a polynomial."""
    if isinstance(dim, int):
        return _const(dim)
    text = dim if isinstance(dim, str) else dim_text(dim)
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        return {(text,): 1}
    return _expr(tree, text)


def _const(value: int) -> Poly:
    return {(): value} if value else {}


def _expr(node: ast.AST, text: str) -> Poly:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return _const(int(node.value))
    if isinstance(node, ast.Name):
        return {(node.id,): 1}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _expr(node.operand, text)
        return inner if isinstance(node.op, ast.UAdd) else scale(inner, -1)
    if isinstance(node, ast.BinOp):
        lhs, rhs = _expr(node.left, text), _expr(node.right, text)
        if isinstance(node.op, ast.Add):
            return add(lhs, rhs)
        if isinstance(node.op, ast.Sub):
            return add(lhs, scale(rhs, -1))
        if isinstance(node.op, ast.Mult):
            return mul(lhs, rhs)
        if isinstance(node.op, ast.FloorDiv):
            return floordiv(lhs, rhs)
    return {(f"({ast.unparse(node)})",): 1}


def add(a: Poly, b: Poly) -> Poly:
    """a + b."""
    out = dict(a)
    for m, c in b.items():
        out[m] = out.get(m, 0) + c
        if out[m] == 0:
            del out[m]
    return out


def scale(a: Poly, k: int) -> Poly:
    """k * a."""
    return {m: c * k for m, c in a.items()} if k else {}


def mul(a: Poly, b: Poly) -> Poly:
    """a * b."""
    out: Poly = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            out = add(out, {tuple(sorted(ma + mb)): ca * cb})
    return out


def product(polys: Iterable[Poly]) -> Poly:
    """The product of polynomials (1 for none)."""
    out: Poly = {(): 1}
    for p in polys:
        out = mul(out, p)
    return out


def constant_value(a: Poly) -> int | None:
    """The value of a constant polynomial, else None."""
    if not a:
        return 0
    if set(a) == {()}:
        return a[()]
    return None


def _order(m: Monomial) -> tuple[int, Monomial]:
    return (len(m), m)


def _divide_monomial(m: Monomial, d: Monomial) -> Monomial | None:
    rest = list(m)
    for atom in d:
        if atom not in rest:
            return None
        rest.remove(atom)
    return tuple(rest)


def exact_div(a: Poly, b: Poly) -> Poly | None:
    """The q with q * b == a (multivariate division, remainder zero), else None."""
    if not b:
        return None
    quotient: Poly = {}
    rest = dict(a)
    lead_b = max(b, key=_order)
    while rest:
        lead = max(rest, key=_order)
        m = _divide_monomial(lead, lead_b)
        if m is None or rest[lead] % b[lead_b]:
            return None
        term = {m: rest[lead] // b[lead_b]}
        quotient = add(quotient, term)
        rest = add(rest, scale(mul(term, b), -1))
    return quotient


def floordiv(a: Poly, b: Poly) -> Poly:
    """a // b: exact where b divides a, an opaque atom otherwise."""
    ca, cb = constant_value(a), constant_value(b)
    if ca is not None and cb is not None and cb != 0:
        return _const(ca // cb)
    q = exact_div(a, b)
    if q is not None:
        return q
    return {(f"({poly_text(a)}) // ({poly_text(b)})",): 1}


def poly_text(a: Poly) -> str:
    """A Python-syntax text of a polynomial (canonical order)."""
    if not a:
        return "0"
    parts = []
    for m in sorted(a, key=_order, reverse=True):
        c, factors = a[m], " * ".join(m)
        if not factors:
            parts.append(str(c))
        elif c in (1, -1):
            parts.append(factors if c == 1 else "-" + factors)
        else:
            parts.append(f"{c} * {factors}")
    return " + ".join(parts).replace("+ -", "- ")


def count_text(a: Poly) -> str:
    """The text of a polynomial in the Dim algebra's canonical form (for messages)."""
    return dim_text(from_poly(a))


def equal(a: Dim, b: Dim) -> bool:
    """Whether two dims are provably the same size."""
    return to_poly(a) == to_poly(b)


def from_poly(a: Poly) -> Dim:
    """A Dim for a polynomial, built with the Dim algebra."""
    return Dim(_build(ast.parse(poly_text(a), mode="eval").body))


def _build(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return Dim(int(node.value))
    if isinstance(node, ast.Name):
        return Dim(node.id)
    if isinstance(node, ast.UnaryOp):
        return -_build(node.operand) if isinstance(node.op, ast.USub) else _build(node.operand)
    if isinstance(node, ast.BinOp):
        lhs, rhs = _build(node.left), _build(node.right)
        if isinstance(node.op, ast.Add):
            return lhs + rhs
        if isinstance(node.op, ast.Sub):
            return lhs - rhs
        if isinstance(node.op, ast.Mult):
            return lhs * rhs
        if isinstance(node.op, ast.FloorDiv):
            return lhs // rhs
    raise ValueError(f"cannot read dim expression {ast.unparse(node)!r}")


def num_elements(dims: Sequence[Dim]) -> Poly:
    """The element count of a shape, as a polynomial."""
    return product(to_poly(d) for d in dims)


def shape_text(dims: Sequence[Dim]) -> str:
    """``[batch, 3]``-style text of a shape for error messages."""
    return "[" + ", ".join(dim_text(d) for d in dims) + "]"


def normalize_axis(op: str, axis: int, rank: int, *, name: str = "axis") -> int:
    """A non-negative axis in ``[0, rank)``; raises ValueError naming the op otherwise."""
    if isinstance(axis, bool) or not isinstance(axis, int) and not _is_np_int(axis):
        raise TypeError(f"{op}: {name} must be an int, got {axis!r}")
    axis = int(axis)
    if not -rank <= axis < rank:
        raise ValueError(
            f"{op}: {name}={axis} is out of range for a tensor of rank {rank} "
            f"(expected {-rank} <= {name} < {rank})"
        )
    return axis + rank if axis < 0 else axis
