"""Library for graph dimension types.

The Dim algebra lives in :mod:`max.dialects.mo.dim`, beside the MO types whose dims it reads:
the op type rules (``max.dialects.mo.opdefs``) and the MO verifier use it without importing
``max.graph``. This module is its public name, as in MAX.
"""

from __future__ import annotations

from max.dialects.mo.dim import (  # noqa: F401  (re-exported, some private for max.graph)
    AlgebraicDim,
    Dim,
    DimLike,
    StaticDim,
    SymbolicDim,
    _evaluate_dim,
    _from_poly,
    _parse_dim,
)

__all__ = ["AlgebraicDim", "Dim", "DimLike", "StaticDim", "SymbolicDim"]
