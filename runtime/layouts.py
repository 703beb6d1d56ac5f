"""Load-time layouts: a weight or constant stored in the order its kernel reads it.

The compiler may read a 2-D argument that is given at load time (a named weight or an
externalized constant) in another order than the user's, when the only use of the argument
wants it so: a transpose (``x @ W.T`` of a ``Linear``) or a panel matmul
(``compiler/pipelines/matmul_pack``). The argument keeps its declared shape at the ABI; only
the order of its bytes changes. Constants are rearranged once at compile time (the worker),
weights once at load time (the engine, here), so the same compiled artifact serves any
weights: the price is one copy of each rearranged weight, made once.

Layouts (``W`` as the user gives it, ``P`` columns a panel: the panel matmul's register tile
width, 32 with AVX-512, 16 with AVX2):

* ``"t"``: ``W[R, C]`` stored as ``W.T`` (``[C, R]``, contiguous).
* ``"panels"`` (``P = 32``), ``"panels16"`` (``P = 16``): ``B[K, N]`` stored as panels
  ``[N/P, K, P]``. Where P does not divide N, the ``J = N // P`` panels of its first columns,
  then its last ``N mod P`` columns as a row-major ``[K, N mod P]``.
* ``"panels_t"``, ``"panels16_t"``: ``W[N, K]`` (``B = W.T``) stored as the panels of ``W.T``.
* ``"perm:P0,P1,..."``: an argument of any rank stored as ``np.transpose(W, P)`` (a conv
  filter given in PyTorch's ``[F, C, R, S]`` order and permuted in the graph to ``[R, S, C,
  F]``: ``"perm:2,3,1,0"``). ``"t"`` is ``"perm:1,0"`` of a 2-D argument.
* ``"q4_0_split"``, ``"q4_1_split"``, ``"q8_0_split"``: a GGUF-quantized ``W[N, row_bytes]``
  (``uint8``, blocks of 32 weights: f16 header fields, then the codes) with each row's bytes
  regrouped: the codes of every block, then the first header field (the scale) of every
  block, then the second (Q4_1's min). Same bytes, same size: the decode ``qmatmul``
  (``compiler/lowering/quant_gemv``) reads 16 blocks' scales with one load.
"""

from __future__ import annotations

import numpy as np

PANEL = 32  # columns of the widest panel: the panel matmul's register tile with AVX-512 (2 zmm)
# Panel layouts by name: their width.
PANEL_LAYOUTS = {"panels": 32, "panels_t": 32, "panels16": 16, "panels16_t": 16}
# GGUF block encodings a "split" layout regroups: (bytes per block, f16 header fields).
SPLIT_BLOCKS = {"q4_0": (18, 1), "q4_1": (20, 2), "q8_0": (34, 1)}
LAYOUTS = ("t", *PANEL_LAYOUTS, *(f"{e}_split" for e in SPLIT_BLOCKS))


def panel_layout(width: int, transposed: bool) -> str:
    """The name of the panel layout ``width`` columns wide (of ``W`` given as ``B.T`` when
    ``transposed``)."""
    name = "panels" if width == PANEL else f"panels{width}"
    if PANEL_LAYOUTS.get(name) != width:
        raise ValueError(f"no panel layout {width} columns wide (widths: 16, 32)")
    return name + "_t" if transposed else name


PERM = "perm:"


def permutation_layout(perm: list[int] | tuple[int, ...]) -> str:
    """The layout of an argument stored as ``np.transpose(W, perm)``."""
    return PERM + ",".join(str(int(p)) for p in perm)


def _permutation(layout: str) -> list[int] | None:
    """The permutation of a ``"perm:..."`` layout, None if it names none."""
    digits = layout.removeprefix(PERM).split(",")
    if not all(d.isascii() and d.isdigit() for d in digits):
        return None
    return [int(d) for d in digits]


def layout_error(layout: str, shape: tuple[int, ...]) -> str | None:
    """Why an argument of ``shape`` cannot be stored in ``layout``; None when it can."""
    if isinstance(layout, str) and layout.startswith(PERM):
        perm = _permutation(layout)
        if perm is None or sorted(perm) != list(range(len(shape))):
            return (f"layout {layout!r} is no permutation of the {len(shape)} dims of shape "
                    f"{list(shape)}")
        return None
    if layout not in LAYOUTS:
        return f"unknown layout {layout!r} (expected one of {', '.join(LAYOUTS)} or perm:...)"
    if len(shape) != 2:
        return f"layout {layout!r} needs a 2-D argument, got shape {list(shape)}"
    if layout.endswith("_split"):
        nbytes = SPLIT_BLOCKS[layout.removesuffix("_split")][0]
        if shape[1] % nbytes:
            return f"layout {layout!r} needs rows of whole {nbytes}-byte blocks, got {shape[1]}"
        return None
    return None


def apply_layout(array: np.ndarray, layout: str, out: np.ndarray | None = None) -> np.ndarray:
    """``array``'s elements in ``layout``, in a C-contiguous array of its shape and dtype:
    ``out`` when given (the engine's huge-page buffer), else a new one.

    Raises:
        ValueError: if ``array`` cannot be stored in ``layout`` (see :func:`layout_error`), or
            ``out`` is not a C-contiguous array of ``array``'s shape and dtype.
    """
    why = layout_error(layout, tuple(array.shape))
    if why is not None:
        raise ValueError(why)
    if out is None:
        out = np.empty(array.shape, array.dtype)
    elif out.shape != array.shape or out.dtype != array.dtype or not out.flags.c_contiguous:
        raise ValueError(f"apply_layout: out must be a C-contiguous {array.dtype} array of "
                         f"shape {list(array.shape)}")
    if layout.startswith(PERM):
        perm = _permutation(layout)
        assert perm is not None  # layout_error checked it
        out.reshape([array.shape[p] for p in perm])[...] = array.transpose(perm)
        return out
    rows, cols = array.shape
    if layout.endswith("_split"):
        _split_blocks(array, out, *SPLIT_BLOCKS[layout.removesuffix("_split")])
    elif layout == "t":
        out.reshape(cols, rows)[...] = array.T
    else:
        b = array if not layout.endswith("_t") else array.T  # B[K, N]
        _panels(b, PANEL_LAYOUTS[layout], out.reshape(-1))
    return out


def _panels(b: np.ndarray, p: int, flat: np.ndarray) -> None:
    """B[K, N]'s panels ``[N // P, K, P]`` into ``flat``, then its last ``N mod P`` columns as
    ``[K, N mod P]``."""
    k, n = b.shape
    j, r = divmod(n, p)
    flat[:j * k * p].reshape(j, k, p)[...] = b[:, :j * p].reshape(k, j, p).transpose(1, 0, 2)
    flat[j * k * p:].reshape(k, r)[...] = b[:, j * p:]


def _split_blocks(array: np.ndarray, out: np.ndarray, nbytes: int, fields: int) -> None:
    """Each row ``[block 0 | block 1 | ...]`` (a block: ``fields`` f16, then its codes) as
    ``[codes of all blocks | field 0 of all blocks | field 1 of all blocks]``, into ``out``."""
    rows, cols = array.shape
    blocks = np.ascontiguousarray(array).view(np.uint8).reshape(rows, cols // nbytes, nbytes)
    dest = out.view(np.uint8).reshape(rows, -1)
    parts = [blocks[:, :, 2 * fields:]] + [blocks[:, :, 2 * i:2 * i + 2] for i in range(fields)]
    at = 0
    for part in parts:
        width = part.shape[1] * part.shape[2]
        dest[:, at:at + width] = part.reshape(rows, width)
        at += width


__all__ = ["LAYOUTS", "PANEL", "PANEL_LAYOUTS", "PERM", "SPLIT_BLOCKS", "apply_layout",
           "layout_error", "panel_layout", "permutation_layout"]
