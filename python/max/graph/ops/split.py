"""``split`` (slices at static offsets) and ``chunk`` (a reshape, then one index each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from max.graph.dim import Dim
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong


def split(x: Any, split_sizes: Sequence[Any], axis: int = 0) -> list[TensorValue]:
    """Splits the input tensor into multiple tensors along a given dimension.

    The offset of every piece must be static: all sizes but the last one are ints. The last
    size may be symbolic (``split(x, [2, n - 2])`` of a dim ``n``); the sizes must add up to
    the dim, provably.

    Args:
        x: The input symbolic tensor to split.
        split_sizes: Sizes of each output tensor. Must add up to the split dimension axis.
        axis: Dimension to split the input tensor. Must have a statically known dimension
            size (or a symbolic one that the sizes add up to, as above).

    Returns:
        A list of tensors with the same length as split_sizes, where each tensor has the
        same shape as the input except along the split dimension axis, where the size is
        given by the corresponding element in split_sizes.

    Raises:
        ValueError: If the axis is out of range, a size is negative, the sizes do not add up
            to the dim, or a size before the last is symbolic.
        TypeError: If ``split_sizes`` is not a sequence of dims.
    """
    from max.graph.ops.slice import slice_tensor

    x = as_strong("split", x)
    if x.rank == 0:
        raise ValueError("split: x is a scalar (rank 0): there is no axis to split")
    axis = _dims.normalize_axis("split", axis, x.rank)
    if isinstance(split_sizes, TensorValue | str) or not isinstance(split_sizes, Sequence):
        raise TypeError(f"split: split_sizes must be a sequence of dims, got {split_sizes!r}")
    sizes = [_dims.as_dim(s, where=f"split: split_sizes[{i}]") for i, s in enumerate(split_sizes)]
    dim = x.shape[axis]
    shape = _dims.shape_text(x.shape)
    for i, s in enumerate(sizes):
        value = _dims.static_value(s)
        if value is not None and value < 0:
            raise ValueError(f"split: split_sizes[{i}] = {value} is negative")
        if value is None and i != len(sizes) - 1:
            raise ValueError(f"split: split_sizes[{i}] = {_dims.dim_text(s)} is symbolic; only "
                             "the last size may be (the pieces start at static offsets)")
    total = Dim(0)
    for s in sizes:
        total = total + s
    if total != dim:
        raise ValueError(f"split: split_sizes {_dims.shape_text(sizes)} add up to "
                         f"{_dims.dim_text(total)}, not to dim {axis} of {shape} "
                         f"({_dims.dim_text(dim)})")
    out = []
    offset = 0
    for i, s in enumerate(sizes):
        index: list[Any] = [slice(None)] * x.rank
        length = _dims.static_value(s)
        # Each piece names its length: on a symbolic dim the slice cannot infer it, and the
        # compiled code checks it at run time.
        if length is None:
            index[axis] = (slice(offset, None), s)  # the rest of the dim
        else:
            index[axis] = (slice(offset, offset + length), s)
            offset += length
        out.append(slice_tensor(x, index))
    return out


def chunk(x: Any, chunks: int, axis: int = 0) -> list[TensorValue]:
    """Chunk the tensor into an exact number of chunks along the specified dim.

    Example:
        ``chunk(a, 2, 0)`` of ``[1, 2, 3, 4]`` is ``[[1, 2], [3, 4]]``.

    The dim is reshaped into ``[chunks, dim / chunks]`` and each chunk is one index of it, so
    a symbolic dim works where the dim algebra divides it (``2 * n`` into 2 chunks of ``n``).

    Args:
        x: The tensor to chunk.
        chunks: The number of chunks to split the tensor into. chunks must statically evenly
            divide x.shape[axis].
        axis: The axis to split the tensor along.

    Returns:
        A list of chunks tensors.

    Raises:
        ValueError: If chunks is not positive or does not evenly divide the dim, or the axis
            is out of range.
        TypeError: If chunks is not an int.
    """
    from max.graph.ops.reshape import reshape
    from max.graph.ops.slice import slice_tensor

    x = as_strong("chunk", x)
    if isinstance(chunks, bool) or not isinstance(chunks, int) and not _dims._is_np_int(chunks):
        raise TypeError(f"chunk: chunks must be an int, got {chunks!r}")
    chunks = int(chunks)
    if chunks <= 0:
        raise ValueError(f"chunk: chunks={chunks} must be positive")
    if x.rank == 0:
        raise ValueError("chunk: x is a scalar (rank 0): there is no axis to chunk")
    axis = _dims.normalize_axis("chunk", axis, x.rank)
    dim = x.shape[axis]
    size = _dims.exact_div(dim, Dim(chunks))
    if size is None:
        raise ValueError(f"chunk: chunks={chunks} does not statically evenly divide dim {axis} "
                         f"({_dims.dim_text(dim)}) of {_dims.shape_text(x.shape)}")
    grouped = reshape(x, [*x.shape[:axis], Dim(chunks), size, *x.shape[axis + 1:]])
    prefix: list[Any] = [slice(None)] * axis
    return [slice_tensor(grouped, [*prefix, i]) for i in range(chunks)]
