"""Buffer ops: ``buffer_create``, ``buffer_load``, ``buffer_store``, ``buffer_store_slice``.

A buffer (:class:`~max.graph.BufferValue`, ``!mo.buffer``) is mutable memory: a graph input of
:class:`~max.graph.BufferType` is the caller's array, updated in place by ``Model.execute``.
Side effects take effect in program order (the graph is one block): a load sees every store
emitted before it, and a later store does not change a tensor loaded earlier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from max.dialects.mo.opdefs import OPS
from max.graph.dim import Dim
from max.graph.graph import Graph
from max.graph.ops import _dims
from max.graph.ops._promotion import emit, weak_to_tensor
from max.graph.type import BufferType
from max.graph.value import BufferValue, TensorValue, Value


def _buffer(op: str, value: Any) -> BufferValue:
    if isinstance(value, BufferValue):
        return value
    if hasattr(value, "__buffervalue__"):  # HasBufferValue
        return _buffer(op, value.__buffervalue__())
    if isinstance(value, Value):
        raise TypeError(f"{op}: expected a buffer, got a value of type {value.type}")
    raise TypeError(f"{op}: expected a BufferValue, got {type(value).__name__}")


def _source(op: str, buffer: BufferValue, value: Any) -> TensorValue:
    """The tensor to store: a graph tensor of the buffer's dtype and device, or a weak value
    (Python or numpy) converted to them after an exactness check."""
    if isinstance(value, BufferValue):
        raise TypeError(f"{op}: source must be a tensor, got a buffer (load it first)")
    if hasattr(value, "__tensorvalue__"):
        value = value.__tensorvalue__()
    if not isinstance(value, TensorValue):
        return weak_to_tensor(op, value, buffer.dtype, buffer.device)
    if value.dtype != buffer.dtype:
        raise ValueError(f"{op}: source has dtype {value.dtype.name}, the buffer "
                         f"{buffer.dtype.name} (cast it first)")
    if value.device != buffer.device:
        raise ValueError(f"{op}: source is on {value.device}, the buffer on {buffer.device}")
    return value


def _fit(op: str, x: TensorValue, shape: Sequence[Dim]) -> TensorValue:
    """``x`` broadcast (numpy rules) to ``shape``."""
    from max.graph.ops.broadcast_to import broadcast_to

    if list(x.shape) == list(shape):
        return x
    try:
        return broadcast_to(x, list(shape))
    except ValueError as e:
        raise ValueError(f"{op}: source shape {list(x.shape)} does not fit the destination "
                         f"{list(shape)}: {e}") from None


def buffer_create(type: BufferType) -> BufferValue:
    """Creates a buffer of the given type.

    Args:
        type: The type of the resulting BufferValue.

    Returns:
        A new BufferValue of the requested type.
    """
    if not isinstance(type, BufferType):
        raise TypeError(f"buffer_create: type must be a BufferType, got {type!r}")
    OPS["mo.buffer_create"].verify([], {}, type)
    return Graph.current._add_op("mo.buffer_create", [], [type])[0]


def buffer_load(x: Any) -> TensorValue:
    """Loads the input buffer into a tensor.

    It loads the in-place mutable tensor to an immutable tensor graph value. This is
    semantically equivalent to a copy from the mutable tensor ``x`` to the mutable
    value-semantic tensor output.

    Args:
        x: The buffer to be loaded to a tensor.

    Returns:
        A tensor graph value representing a copy of the buffer loaded.
    """
    buffer = _buffer("buffer_load", x)
    return emit("mo.buffer_load", [buffer], buffer.dtype, list(buffer.shape), buffer.device)


def buffer_store(destination: Any, source: Any) -> None:
    """Stores the input tensor into the in-out buffer.

    It stores the immutable input tensor ``source`` in the mutable tensor ``destination``.
    This is semantically equivalent to a copy from the source tensor to the destination
    buffer. A source of another shape is broadcast to the buffer's (numpy rules).

    Args:
        destination: The buffer to store the tensor in.
        source: The tensor to be stored in the buffer.
    """
    op = "buffer_store"
    buffer = _buffer(op, destination)
    x = _fit(op, _source(op, buffer, source), list(buffer.shape))
    OPS["mo.buffer_store"].verify([buffer.type, x.type], {}, None)
    Graph.current._add_op("mo.buffer_store", [buffer, x], [])


def _window(op: str, shape: Sequence[Dim], indices: Sequence[Any]
            ) -> tuple[list[int], list[int], list[Dim], list[Dim]]:
    """starts, steps, the window's dims, and its dims without integer-indexed axes."""
    items = list(indices)
    if sum(i is Ellipsis for i in items) > 1:
        raise ValueError(f"{op}: at most one Ellipsis in indices")
    if Ellipsis in items:
        k = items.index(Ellipsis)
        fill = len(shape) - (len(items) - 1)
        items[k:k + 1] = [slice(None)] * max(fill, 0)
    if len(items) > len(shape):
        raise ValueError(f"{op}: {len(items)} indices for a rank-{len(shape)} buffer")
    items += [slice(None)] * (len(shape) - len(items))
    starts: list[int] = []
    steps: list[int] = []
    window: list[Dim] = []
    kept: list[Dim] = []  # the window without integer-indexed axes (the source's shape)

    def add(start: int, step: int, dim: Dim, keep: bool) -> None:
        starts.append(start)
        steps.append(step)
        window.append(dim)
        if keep:
            kept.append(dim)

    for axis, (item, dim) in enumerate(zip(items, shape)):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], slice):
            item = item[0]  # (slice, out_dim): the slice decides the window
        n = _dims.static_value(dim)
        if isinstance(item, slice) and item == slice(None):
            add(0, 1, dim, True)
            continue
        if n is None:
            raise ValueError(f"{op}: axis {axis} has symbolic size {dim}: it can only be "
                             "stored whole (':')")
        if isinstance(item, int) and not isinstance(item, bool):
            if not -n <= item < n:
                raise ValueError(f"{op}: index {item} is out of bounds for axis {axis} with "
                                 f"size {n}")
            add(item % n, 1, Dim(1), False)
            continue
        if isinstance(item, slice):
            r = range(n)[item]
            if r.step < 0:
                raise ValueError(f"{op}: axis {axis}: negative steps are not supported "
                                 f"({item})")
            add(r.start if len(r) else 0, r.step, Dim(len(r)), True)
            continue
        raise TypeError(f"{op}: index {item!r} on axis {axis}: only ints, slices of ints and "
                        "Ellipsis are supported")
    return starts, steps, window, kept


def buffer_store_slice(destination: Any, source: Any, indices: Sequence[Any]) -> None:
    """Stores the input tensor to into a slice in the input buffer.

    It stores the immutable input tensor ``source`` in the mutable tensor ``destination``.
    This is semantically equivalent to a copy from source tensor to a slice in the
    destination buffer at index specified by indices.

    Indices are ints, slices with int bounds (positive steps) and ``Ellipsis``, as numpy's;
    an axis of symbolic size is stored whole (``:``). The source broadcasts to the slice.

    Args:
        destination: The buffer to store the tensor in.
        source: The tensor to be stored in the buffer.
        indices: The index in the buffer where the tensor should be stored.
    """
    op = "buffer_store_slice"
    buffer = _buffer(op, destination)
    starts, steps, window, kept = _window(op, list(buffer.shape), indices)
    x = _fit(op, _source(op, buffer, source), kept)
    if len(kept) != len(window):
        from max.graph.ops.reshape import reshape

        x = reshape(x, window)
    attrs = {"starts": starts, "steps": steps}
    OPS["mo.buffer_store_slice"].verify([buffer.type, x.type], attrs, None)
    Graph.current._add_op("mo.buffer_store_slice", [buffer, x], [], attrs)
