"""``repeat_interleave``: by an int, a composite (``reshape`` + ``broadcast_to`` +
``reshape``); by a tensor of counts, ``mo.repeat_interleave`` with the total declared by
``out_dim``. ``as_interleaved_complex``: a ``reshape``."""

from __future__ import annotations

from typing import Any

from max.graph.dim import Dim
from max.graph.value import TensorValue, Value

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit, same_device
from max.graph.ops.broadcast_to import _broadcast_to
from max.graph.ops.reshape import _reshape_to


def _repeat_by_tensor(x: TensorValue, repeats: Any, axis: int | None,
                      out_dim: Any) -> TensorValue:
    """``mo.repeat_interleave``: counts known at run time, the total declared by out_dim."""
    repeats = as_strong("repeat_interleave", repeats, "repeats")
    if out_dim is None:
        raise ValueError(
            "repeat_interleave: a tensor of repeats needs out_dim, the size of the repeated "
            "dimension: it depends on the values of repeats, which are known only at run time")
    declared = _dims.as_dim(out_dim, where="repeat_interleave: out_dim")
    if not repeats.dtype.is_integral():
        raise ValueError(f"repeat_interleave: repeats must have an integer dtype, got "
                         f"{repeats.dtype.name}")
    if repeats.rank == 0:
        repeats = _reshape_to(repeats, [Dim(1)])
    if axis is None:
        x = _reshape_to(x, [_dims.num_elements(x.shape)])
        axis = 0
    axis = _dims.normalize_axis("repeat_interleave", axis, x.rank)
    if repeats.rank != 1 or repeats.shape[0] not in (x.shape[axis], 1):
        raise ValueError(
            f"repeat_interleave: repeats {_dims.shape_text(repeats.shape)} must have one count "
            f"per element of dim {axis} of {_dims.shape_text(x.shape)}, or a single one")
    same_device("repeat_interleave", [x, repeats])
    from max.graph.ops.rebind import bind_data_symbol

    # A new symbol is the total that only the counts determine: the op binds it.
    bind_data_symbol("repeat_interleave", declared, "out_dim")
    dims = list(x.shape)
    dims[axis] = declared
    return emit("mo.repeat_interleave", [x, repeats], x.dtype, dims, x.device, {"axis": axis})


def repeat_interleave(x: Any, repeats: int | TensorValue, axis: int | None = None,
                      out_dim: Any = None) -> TensorValue:
    """Repeats elements of a tensor along the given dimension.

    Modeled after ``torch.repeat_interleave``: ``repeat_interleave(x, 2, axis=0)`` of
    ``[[1, 2], [3, 4]]`` is ``[[1, 2], [1, 2], [3, 4], [3, 4]]``; with
    ``repeats=TensorValue([2, 3])`` and ``out_dim=5`` it is
    ``[[1, 2], [1, 2], [3, 4], [3, 4], [3, 4]]``.

    Args:
        x: The input tensor.
        repeats: The number of repetitions for each element: a positive int, or an integer
            tensor of shape ``[x.shape[axis]]`` (or ``[1]``, or a scalar: one count for
            all) of non-negative counts.
        axis: The dimension along which to repeat values. If axis is not specified or None
            (the default), flatten the input array and repeat the flattened values.
        out_dim: The size of the repeated dimension. Required with a tensor of repeats: a
            new symbol (no input has it) is the total the counts give, bound when the graph
            runs; a known dim is checked (the model raises ``ValueError`` when the counts are
            negative or do not sum to it). With an int it must equal
            ``x.shape[axis] * repeats``.

    Returns:
        A symbolic tensor with the elements interleaved.

    Raises:
        ValueError: If ``repeats`` non-positive or if ``axis`` is out of range, if
            ``out_dim`` is missing for a tensor of repeats or is not the repeated size of an
            int, or if a tensor of repeats has the wrong shape or dtype.
        TypeError: If ``repeats`` is neither an int nor a tensor.
    """
    x = as_strong("repeat_interleave", x)
    if isinstance(repeats, Value) or hasattr(repeats, "__tensorvalue__"):
        return _repeat_by_tensor(x, repeats, axis, out_dim)
    if isinstance(repeats, bool) or not isinstance(repeats, int) and not _dims._is_np_int(
            repeats):
        raise TypeError(f"repeat_interleave: repeats must be an int or a tensor, got "
                        f"{repeats!r}")
    repeats = int(repeats)
    if repeats <= 0:
        raise ValueError(f"repeat_interleave: repeats must be positive, got {repeats}")
    if axis is None:
        x = _reshape_to(x, [_dims.num_elements(x.shape)])
        axis = 0
    axis = _dims.normalize_axis("repeat_interleave", axis, x.rank)
    size = x.shape[axis] * repeats
    if out_dim is not None:
        declared = _dims.as_dim(out_dim, where="repeat_interleave: out_dim")
        if declared != size:
            raise ValueError(
                f"repeat_interleave: out_dim={_dims.dim_text(declared)} is not the repeated "
                f"size {_dims.dim_text(size)} (dim {axis} of {_dims.shape_text(x.shape)} "
                f"times {repeats})")
    # [.., n, ..] -> [.., n, 1, ..] -> [.., n, repeats, ..] -> [.., n * repeats, ..]
    spread = [*x.shape[:axis + 1], Dim(1), *x.shape[axis + 1:]]
    wide = [*x.shape[:axis + 1], Dim(repeats), *x.shape[axis + 1:]]
    out = _broadcast_to("repeat_interleave", _reshape_to(x, spread), wide)
    return _reshape_to(out, [*x.shape[:axis], size, *x.shape[axis + 1:]])


def as_interleaved_complex(x: Any) -> TensorValue:
    """Reshapes the input symbolic tensor as complex from alternating (real, imag).

    Args:
        x: A symbolic tensor representing complex numbers as alternating pairs of (real,
            imag) real-valued numbers. Its last dimension must have an even size (static,
            or symbolic and provably even such as ``2 * n``).

    Returns:
        A symbolic tensor representing the complex-valued tensor, but with the values pulled
        out as complex numbers. The result has the same dimensions for all dimensions
        except the last dimension, which is halved, and then a final dimension of size 2
        representing the complex value.

    Raises:
        ValueError: If ``x`` is a scalar or its last dimension is not (provably) even.
    """
    x = as_strong("as_interleaved_complex", x)
    if x.rank == 0:
        raise ValueError("as_interleaved_complex: x must have rank >= 1, got a scalar")
    last = x.shape[-1]
    n = _dims.static_value(last)
    half = (Dim(n // 2) if n % 2 == 0 else None) if n is not None else _dims.exact_div(
        last, Dim(2))
    if half is None:
        raise ValueError(f"as_interleaved_complex: the last dimension of x "
                         f"{_dims.shape_text(x.shape)} must have an even size")
    return _reshape_to(x, [*x.shape[:-1], half, Dim(2)])
