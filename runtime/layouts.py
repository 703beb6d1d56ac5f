"""Load-time layouts: a weight or constant stored in the order its kernel reads it.

The compiler may read a 2-D argument that is given at load time (a named weight or an
externalized constant) in another order than the user's, when the only use of the argument
wants it so: a transpose (``x @ W.T`` of a ``Linear``) or a panel matmul
(``compiler/pipelines/matmul_pack``). The argument keeps its declared shape at the ABI; only
the order of its bytes changes. Constants are rearranged once at compile time (the worker),
weights once at load time (the engine, here), so the same compiled artifact serves any
weights: the price is one copy of each rearranged weight, made once.

Layouts (``W`` as the user gives it, ``P = 32`` columns a panel):

* ``"t"``: ``W[R, C]`` stored as ``W.T`` (``[C, R]``, contiguous).
* ``"panels"``: ``B[K, N]`` stored as panels ``[N/P, K, P]``.
* ``"panels_t"``: ``W[N, K]`` (``B = W.T``) stored as the panels of ``W.T``.
"""

from __future__ import annotations

import numpy as np

PANEL = 32  # columns of a panel: the panel matmul's register tile width (2 zmm)
LAYOUTS = ("t", "panels", "panels_t")


def layout_error(layout: str, shape: tuple[int, ...]) -> str | None:
    """Why an argument of ``shape`` cannot be stored in ``layout``; None when it can."""
    if layout not in LAYOUTS:
        return f"unknown layout {layout!r} (expected one of {', '.join(LAYOUTS)})"
    if len(shape) != 2:
        return f"layout {layout!r} needs a 2-D argument, got shape {list(shape)}"
    n = shape[1] if layout == "panels" else shape[0]
    if layout != "t" and n % PANEL:
        return f"layout {layout!r} needs {n} columns of B to be a multiple of {PANEL}"
    return None


def apply_layout(array: np.ndarray, layout: str) -> np.ndarray:
    """A new C-contiguous array of ``array``'s shape holding its elements in ``layout``.

    Raises:
        ValueError: if ``array`` cannot be stored in ``layout`` (see :func:`layout_error`).
    """
    why = layout_error(layout, tuple(array.shape))
    if why is not None:
        raise ValueError(why)
    rows, cols = array.shape
    if layout == "t":
        out = np.ascontiguousarray(array.T)
    elif layout == "panels":  # B[K, N] -> [N/P, K, P]
        out = np.ascontiguousarray(array.reshape(rows, cols // PANEL, PANEL).transpose(1, 0, 2))
    else:  # W[N, K] = B.T -> B's panels: out[j, k, c] = W[j*P + c, k]
        out = np.ascontiguousarray(array.reshape(rows // PANEL, PANEL, cols).transpose(0, 2, 1))
    return out.reshape(rows, cols)


__all__ = ["LAYOUTS", "PANEL", "apply_layout", "layout_error"]
