"""The canonical polynomial form behind algebraic dims (used by max.dialects.mo.dim only)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

# The canonical form. An atom is ``(0, name)`` (a symbol) or ``(1, num, den)`` (``num // den``,
# both _Polys); a monomial is a sorted tuple of atoms (repeated for powers); a _Poly is a tuple
# of (monomial, nonzero coefficient), sorted by degree (highest first) then monomial. The
# constant term has the empty monomial and comes last. Tuples compare and hash structurally.
_Atom = tuple
_Mono = tuple
_Poly = tuple

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _term_key(term: tuple[_Mono, int]) -> tuple[int, _Mono]:
    return (-len(term[0]), term[0])


def _make(acc: dict[_Mono, int]) -> _Poly:
    return tuple(sorted(((m, c) for m, c in acc.items() if c), key=_term_key))


def _const(c: int) -> _Poly:
    return (((), c),) if c else ()


def _sym(name: str) -> _Poly:
    return ((((0, name),), 1),)


def _constant_of(p: _Poly) -> int | None:
    """The value of a constant polynomial, else None."""
    if not p:
        return 0
    if len(p) == 1 and not p[0][0]:
        return p[0][1]
    return None


def _add(p: _Poly, q: _Poly) -> _Poly:
    acc = dict(p)
    for m, c in q:
        acc[m] = acc.get(m, 0) + c
    return _make(acc)


def _scale(p: _Poly, k: int) -> _Poly:
    return tuple((m, c * k) for m, c in p) if k else ()


def _mul(p: _Poly, q: _Poly) -> _Poly:
    acc: dict[_Mono, int] = {}
    for m1, c1 in p:
        for m2, c2 in q:
            m = tuple(sorted(m1 + m2)) if m1 and m2 else (m1 or m2)
            acc[m] = acc.get(m, 0) + c1 * c2
    return _make(acc)


def _div_atom(num: _Poly, den: _Poly) -> _Poly:
    return ((((1, num, den),), 1),)


def _floordiv(p: _Poly, q: _Poly) -> _Poly:
    """``p // q`` (floor division), simplified only by identities true for all integers."""
    c = _constant_of(q)
    if c == 0:
        raise ZeroDivisionError("dim floor division by zero")
    pc = _constant_of(p)
    if pc is not None and (c is not None or pc == 0):
        return _const(pc // c) if c is not None else ()
    if c is None:
        # floor(g*a / (g*b)) == floor(a / b), and floor(a / b) == floor(-a / -b).
        g = math.gcd(*(k for _, k in p), *(k for _, k in q))
        if g > 1:
            p, q = tuple((m, k // g) for m, k in p), tuple((m, k // g) for m, k in q)
        if q[0][1] < 0:
            p, q = _scale(p, -1), _scale(q, -1)
        return _div_atom(p, q)
    if c < 0:
        p, c = _scale(p, -1), -c
    if c == 1:
        return p
    # (c*A + B) // c == A + B // c for integer A.
    whole = tuple((m, k // c) for m, k in p if k % c == 0)
    rest = tuple((m, k) for m, k in p if k % c)
    if not rest:
        return whole
    if not rest[0][0]:  # only the constant term is left
        return _add(whole, _const(rest[0][1] // c))
    g = math.gcd(c, *(k for _, k in rest))
    if g > 1:
        rest, c = tuple((m, k // g) for m, k in rest), c // g
    (mono, coeff), *others = rest
    if not others and coeff == 1 and len(mono) == 1 and mono[0][0] == 1:
        # (a // b) // c == a // (b * c) for c > 0: floor(floor(x) / c) == floor(x / c).
        inner = _floordiv(mono[0][1], _scale(mono[0][2], c))
    else:
        inner = _div_atom(rest, _const(c))
    return _add(whole, inner)


def _operand_str(p: _Poly) -> str:
    """An operand of ``//``: parenthesized unless a symbol or a non-negative int."""
    c = _constant_of(p)
    if c is not None:
        return str(c) if c >= 0 else f"({c})"
    if len(p) == 1 and p[0][1] == 1 and len(p[0][0]) == 1 and p[0][0][0][0] == 0:
        return p[0][0][0][1]
    return f"({_poly_str(p)})"


def _atom_str(atom: _Atom) -> str:
    if atom[0] == 0:
        return atom[1]
    return f"{_operand_str(atom[1])} // {_operand_str(atom[2])}"


def _poly_str(p: _Poly) -> str:
    if not p:
        return "0"
    parts = []
    for i, (mono, coeff) in enumerate(p):
        neg, mag = coeff < 0, abs(coeff)
        if not mono:
            body = str(mag)
        else:
            bare = len(mono) == 1 and mag == 1 and not neg
            factors = [a[1] if a[0] == 0 or bare else f"({_atom_str(a)})" for a in mono]
            if bare:
                factors = [_atom_str(mono[0])]
            if mag != 1:
                factors.append(str(mag))
            body = " * ".join(factors)
        if i == 0:
            parts.append(f"-{body}" if neg else body)
        else:
            parts.append(f" - {body}" if neg else f" + {body}")
    return "".join(parts)


def _symbols(p: _Poly, out: dict[str, None]) -> dict[str, None]:
    for mono, _ in p:
        for atom in mono:
            if atom[0] == 0:
                out[atom[1]] = None
            else:
                _symbols(atom[1], out)
                _symbols(atom[2], out)
    return out


def _rebuild(p: _Poly, leaf: Callable[[str], Any]) -> Any:
    """Evaluates ``p`` with each symbol replaced by ``leaf(name)`` (ints or Dims)."""
    total: Any = 0
    for mono, coeff in p:
        term: Any = coeff
        for atom in mono:
            if atom[0] == 0:
                term = term * leaf(atom[1])
            else:
                term = term * (_rebuild(atom[1], leaf) // _rebuild(atom[2], leaf))
        total = total + term
    return total


def _exact_div(p: _Poly, q: _Poly) -> _Poly | None:
    """The polynomial r with r * q == p, atoms taken as independent variables, else None.

    Graded division by leading terms; only for callers that may assume ``q != 0`` (reshape's
    ``-1``: ``(batch * 784) // batch`` is 784 unless batch is 0, where no -1 can be inferred).
    """
    if not q:
        return None
    lead_q, coeff_q = q[0]
    quotient: _Poly = ()
    rest = p
    while rest:
        lead, coeff = rest[0]
        remaining = list(lead)
        for atom in lead_q:
            if atom not in remaining:
                return None
            remaining.remove(atom)
        if coeff % coeff_q:
            return None
        term = ((tuple(remaining), coeff // coeff_q),)
        quotient = _add(quotient, term)
        rest = _add(rest, _scale(_mul(term, q), -1))
    return quotient
