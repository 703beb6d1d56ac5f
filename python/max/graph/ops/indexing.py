"""N-dimensional indexing: ``gather_nd`` (``mo.gather_nd``), ``scatter`` (``mo.scatter``) and
``scatter_nd`` (``mo.scatter_nd``).

Indices may be any integer dtype; negative ones count from the end of their axis (once). An
index outside ``[-n, n)`` is never read or written: the model raises ``IndexError`` when it
runs (the model stays usable). When several updates of one scatter land on one position, the
one that comes last in row-major order of ``indices`` wins (numpy's sequential assignment;
``torch.scatter`` leaves it unspecified).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from max.dtype import DType
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit, is_weak, same_device, weak_to_tensor


def _indices(op: str, indices: Any, device: Any) -> TensorValue:
    """A graph value of integer indices; Python/numpy integers become an int64 constant."""
    if is_weak(indices) or isinstance(indices, list | tuple):
        from max.graph.ops.constant import constant

        array = np.asarray(indices)
        if array.dtype.kind not in "iu":
            raise ValueError(f"{op}: indices must be integers, got numpy dtype {array.dtype}")
        indices = constant(array, DType.int64, device)
    indices = as_strong(op, indices, "indices")
    if not indices.dtype.is_integral():
        raise ValueError(f"{op}: indices must have an integer dtype, got {indices.dtype.name}")
    return indices


def _updates(op: str, updates: Any, input: TensorValue) -> TensorValue:
    """The updates as a graph value of input's dtype (Python/numpy values are converted)."""
    if is_weak(updates) or isinstance(updates, list | tuple):
        return weak_to_tensor(op, np.asarray(updates), input.dtype, input.device)
    updates = as_strong(op, updates, "updates")
    if updates.dtype != input.dtype:
        raise ValueError(f"{op}: updates have dtype {updates.dtype.name}, input has "
                         f"{input.dtype.name} (cast one of them with ops.cast)")
    return updates


def _emit_gather_nd(op: str, input: TensorValue, indices: TensorValue,
                    batch_dims: int) -> TensorValue:
    """Checks the shapes of a gather_nd (messages naming ``op``) and emits it."""
    if isinstance(batch_dims, bool) or not isinstance(batch_dims, int):
        raise TypeError(f"{op}: batch_dims must be an int, got {batch_dims!r}")
    if batch_dims < 0:
        raise ValueError(f"{op}: batch_dims={batch_dims} must be >= 0")
    shapes = (f"input {_dims.shape_text(input.shape)}, indices "
              f"{_dims.shape_text(indices.shape)}, batch_dims={batch_dims}")
    if indices.rank < batch_dims + 1:
        raise ValueError(f"{op}: indices needs rank >= batch_dims + 1 = {batch_dims + 1} "
                         f"(batch dims, then the index vector): {shapes}")
    k = _dims.static_value(indices.shape[-1])
    if k is None:
        raise ValueError(f"{op}: the last dimension of indices (the index vector) must be "
                         f"static: {shapes}")
    if batch_dims + k > input.rank:
        raise ValueError(f"{op}: batch_dims + the index vector size ({batch_dims} + {k}) "
                         f"exceeds the rank of input: {shapes}")
    if list(input.shape[:batch_dims]) != list(indices.shape[:batch_dims]):
        raise ValueError(f"{op}: input and indices must match exactly on their first "
                         f"{batch_dims} (batch) dimensions: {shapes}")
    same_device(op, [input, indices])
    dims = [*input.shape[:batch_dims], *indices.shape[batch_dims:-1],
            *input.shape[batch_dims + k:]]
    return emit("mo.gather_nd", [input, indices], input.dtype, dims, input.device,
                {"batch_dims": batch_dims})


def gather_nd(input: Any, indices: Any, batch_dims: int = 0) -> TensorValue:
    """Selects elements out of an input tensor by N-dimensional index.

    This operation performs N-dimensional indexing into ``input`` using ``indices``. Unlike
    :func:`gather`, which indexes along a single axis, ``gather_nd()`` allows indexing along
    multiple dimensions simultaneously.

    Args:
        input: The input symbolic tensor to select elements from.
        indices: A symbolic tensor of index values to use for selection. The last dimension
            of this tensor must be static. This dimension will be used to index or slice
            into ``input`` immediately following ``batch_dims`` initial dimensions. The size
            of this index dimension is the number of dimensions it specifies.
        batch_dims: The number of leading batch dimensions shared by ``input`` and
            ``indices``; 0 by default. ``input`` and ``indices`` must exactly match up to
            their first ``batch_dims`` dimensions. This function does not broadcast.

    Returns:
        A new symbolic tensor representing the result of the gather operation, of
        ``input``'s dtype and of shape ``input.shape[:batch_dims] +
        indices.shape[batch_dims:-1] + input.shape[batch_dims + indices.shape[-1]:]``.

    Raises:
        TypeError: If ``batch_dims`` is not an int or ``input`` is not a graph value.
        ValueError: If ``indices`` is not integral, its last dimension is not static, or
            the shapes do not fit together as above.
    """
    input = as_strong("gather_nd", input, "input")
    indices = _indices("gather_nd", indices, input.device)
    return _emit_gather_nd("gather_nd", input, indices, batch_dims)


def scatter(input: Any, updates: Any, indices: Any, axis: int = -1) -> TensorValue:
    """Creates a new symbolic tensor where the updates are written to input according to
    indices.

    As ``torch.Tensor.scatter(axis, indices, updates)``: for each position ``p`` of
    ``indices``, ``result[p with p[axis] = indices[p]] = updates[p]``; every other element
    is ``input``'s.

    Args:
        input: The input symbolic tensor to write elements to.
        updates: A symbolic tensor of elements to write to input, of ``indices``' shape and
            ``input``'s dtype.
        indices: The positions in input to update: an integer tensor of ``input``'s rank,
            each dimension but ``axis`` at most ``input``'s (equal where symbolic).
        axis: The axis along which indices indexes into (negative counts from the end).

    Returns:
        A new symbolic tensor representing the result of the scatter operation.

    Raises:
        TypeError: If ``input`` is not a graph value or ``axis`` not an int.
        ValueError: If the shapes, ranks or dtypes do not fit, or ``axis`` is out of range.
    """
    input = as_strong("scatter", input, "input")
    indices = _indices("scatter", indices, input.device)
    updates = _updates("scatter", updates, input)
    axis = _dims.normalize_axis("scatter", axis, input.rank)
    shapes = (f"input {_dims.shape_text(input.shape)}, updates "
              f"{_dims.shape_text(updates.shape)}, indices {_dims.shape_text(indices.shape)}")
    if list(updates.shape) != list(indices.shape):
        raise ValueError(f"scatter: updates and indices must have the same shape: {shapes}")
    if indices.rank != input.rank:
        raise ValueError(f"scatter: indices must have the rank of input: {shapes}")
    for i, (d, n) in enumerate(zip(indices.shape, input.shape)):
        sd, sn = _dims.static_value(d), _dims.static_value(n)
        if i != axis and d != n and (sd is None or sn is None or sd > sn):
            raise ValueError(f"scatter: dimension {i} of indices must be at most input's "
                             f"(equal where symbolic): {shapes}")
    same_device("scatter", [input, updates, indices])
    return emit("mo.scatter", [input, updates, indices], input.dtype, list(input.shape),
                input.device, {"axis": axis})


def scatter_nd(input: Any, updates: Any, indices: Any) -> TensorValue:
    """Creates a new symbolic tensor where the updates are scattered into input at specified
    indices.

    For each index vector ``indices[i]`` (the last dimension, of static size ``k``), the
    slice ``result[indices[i]]`` (the first ``k`` coordinates) is ``updates[i]``.

    Args:
        input: The input symbolic tensor to write elements to.
        updates: A symbolic tensor of elements to write to input, of shape
            ``indices.shape[:-1] + input.shape[k:]`` and ``input``'s dtype.
        indices: A tensor of indices specifying where to write updates. Shape should be
            [num_updates, rank] for full indexing or [num_updates, k] for partial indexing
            where k < rank (more leading dimensions are allowed).

    Returns:
        A new symbolic tensor representing the result of the scatter_nd operation.

    Raises:
        TypeError: If ``input`` is not a graph value.
        ValueError: If the shapes or dtypes do not fit as above.
    """
    input = as_strong("scatter_nd", input, "input")
    indices = _indices("scatter_nd", indices, input.device)
    updates = _updates("scatter_nd", updates, input)
    shapes = (f"input {_dims.shape_text(input.shape)}, updates "
              f"{_dims.shape_text(updates.shape)}, indices {_dims.shape_text(indices.shape)}")
    if indices.rank == 0:
        raise ValueError(f"scatter_nd: indices must have rank >= 1: {shapes}")
    k = _dims.static_value(indices.shape[-1])
    if k is None or k > input.rank:
        raise ValueError(f"scatter_nd: the last dimension of indices must be static and at "
                         f"most the rank of input: {shapes}")
    want = [*indices.shape[:-1], *input.shape[k:]]
    if list(updates.shape) != want:
        raise ValueError(f"scatter_nd: updates must have shape indices.shape[:-1] + "
                         f"input.shape[{k}:] = {_dims.shape_text(want)}: {shapes}")
    same_device("scatter_nd", [input, updates, indices])
    return emit("mo.scatter_nd", [input, updates, indices], input.dtype, list(input.shape),
                input.device)
