"""Dim helpers for shape inference, on the Dim algebra (``max.graph.dim``).

The Dim classes keep one canonical form that only applies identities true for every integer
value of the symbols, so ``==`` decides provable equality, ``*`` gives element counts and ``+``
concatenated sizes; reshape's ``-1`` divides canonical polynomials exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from max.dialects.mo._dim_poly import _exact_div
from max.graph.dim import Dim, StaticDim, _from_poly

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


def exact_div(total: Dim, part: Dim) -> Dim | None:
    """The q with ``q * part == total`` for every non-zero value of ``part``, else None."""
    quotient = _exact_div(total._poly, part._poly)
    return None if quotient is None else _from_poly(quotient)


def num_elements(dims: Sequence[Dim]) -> Dim:
    """The element count of a shape, in the Dim algebra's canonical form."""
    count: Dim = Dim(1)
    for d in dims:
        count = count * d
    return count


def shape_text(dims: Sequence[Dim]) -> str:
    """``[batch, 3]``-style text of a shape for error messages."""
    return "[" + ", ".join(dim_text(d) for d in dims) + "]"


class AxisError(IndexError, ValueError):
    """An axis out of range for a tensor's rank.

    An ``IndexError``, as MAX raises (and numpy's ``AxisError``); also a ``ValueError``, as
    every other bad argument of an op builder is.
    """


def normalize_axis(op: str, axis: int, rank: int, *, name: str = "axis") -> int:
    """A non-negative axis in ``[0, rank)``; raises :class:`AxisError` naming the op
    otherwise."""
    if isinstance(axis, bool) or not isinstance(axis, int) and not _is_np_int(axis):
        raise TypeError(f"{op}: {name} must be an int, got {axis!r}")
    axis = int(axis)
    if not -rank <= axis < rank:
        raise AxisError(
            f"{op}: {name}={axis} is out of range for a tensor of rank {rank} "
            f"(expected {-rank} <= {name} < {rank})"
        )
    return axis + rank if axis < 0 else axis
