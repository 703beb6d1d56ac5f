"""``slice_tensor``: numpy-style basic indexing (``mo.slice``, plus a ``mo.reshape`` to drop
int-indexed dims and insert ``None`` dims)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from max.graph.dim import Dim
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit
from max.graph.ops.reshape import _reshape_to

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
BIG = 2**62


@dataclass
class _DimSlice:
    """The slice of one input dim: MO bounds, the result dim, and whether it stays."""

    start: int
    stop: int
    step: int
    out: Dim
    keep: bool
    identity: bool


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_bound(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, Dim) and _dims.static_value(value) is not None:
        return _dims.static_value(value)
    if not _is_int(value):
        raise TypeError(f"slice_tensor: slice {name} must be an int or None, got {value!r}")
    return int(value)


def _int_index(i: int, dim: Dim, axis: int, shape: str) -> _DimSlice:
    n = _dims.static_value(dim)
    if n is not None:
        if not -n <= i < n:
            raise ValueError(
                f"slice_tensor: index {i} is out of bounds for axis {axis} with size {n} "
                f"(shape {shape})"
            )
        i = i + n if i < 0 else i
        return _DimSlice(i, i + 1, 1, Dim(1), False, False)
    i = max(-BIG, min(BIG, i))  # out of range at run time either way; fits the i64 attribute
    stop = INT64_MAX if i == -1 else i + 1
    return _DimSlice(i, stop, 1, Dim(1), False, False)


def _clamp(value: int | None) -> int | None:
    """A bound or step within +-2**62: the same slice for every dim below 2**62 elements,
    and it fits the i64 attributes (Python ints are unbounded)."""
    return None if value is None else max(-BIG, min(BIG, value))


def _symbolic_length(dim: Dim, start: int | None, stop: int | None, step: int) -> Dim | None:
    """The length of ``dim[start:stop:step]`` when one bound counts from the front and the
    other from the end (or is absent): exact for every size at which neither bound clamps.

    For smaller sizes the expression is 0 (what numpy gives), negative (the engine rejects the
    output shape) or differs from the run-time length, which the lowering checks. Bounds on
    one side (``x[0:2]``, ``x[-3:]``) give a length that does not grow with the dim: these
    need an ``out_dim``.
    """
    if step > 0 and (start is None or start >= 0) and (stop is None or stop < 0):
        span = dim + ((stop or 0) - (start or 0))  # stop - start, counted from the front
    elif step < 0 and (start is None or start < 0) and (stop is None or stop >= 0):
        first = -1 if start is None else start  # the first index is dim + first
        span = dim + (first - (-1 if stop is None else stop))
    else:
        return None
    k = abs(step)
    return span if k == 1 else (span + (k - 1)) // k


def _slice_index(index: slice, out_dim: Any, dim: Dim, axis: int, shape: str) -> _DimSlice:
    start, stop = _check_bound("start", index.start), _check_bound("stop", index.stop)
    step = _check_bound("step", index.step)
    step = 1 if step is None else step
    if step == 0:
        raise ValueError(f"slice_tensor: slice step cannot be zero (axis {axis})")
    start, stop, step = _clamp(start), _clamp(stop), _clamp(step)
    identity = start is None and stop is None and step == 1
    n = _dims.static_value(dim)
    given = None if out_dim is None else _dims.as_dim(out_dim, where="slice_tensor: out_dim")
    if n is not None:
        # numpy's semantics: out-of-range bounds clamp (x[10:-10:-1] reverses all of x).
        s0, s1, s2 = slice(start, stop, step).indices(n)
        length = len(range(s0, s1, s2))
        if given is not None and given != length:
            raise ValueError(
                f"slice_tensor: out_dim {_dims.dim_text(given)} does not match the slice "
                f"length {length} on axis {axis} (shape {shape})"
            )
        if length == 0:
            # The normalized start of an empty slice may be -1 or n, which MO reads as
            # Python bounds (-1 = the last element): any empty slice says [0:0].
            return _DimSlice(0, 0, s2, Dim(0), True, identity)
        # A negative stop of slice.indices means "before index 0": MO's INT64_MIN.
        stop_norm = INT64_MIN if s2 < 0 and s1 < 0 else s1
        return _DimSlice(s0, stop_norm, s2, Dim(length), True, identity)
    start_attr = start if start is not None else (INT64_MIN if step > 0 else INT64_MAX)
    stop_attr = stop if stop is not None else (INT64_MAX if step > 0 else INT64_MIN)
    if given is not None:
        out = given
    elif identity:
        out = dim
    else:
        inferred = _symbolic_length(dim, start, stop, step)
        if inferred is None:
            raise ValueError(
                f"slice_tensor: cannot infer the length of {index} on symbolic dim "
                f"{_dims.dim_text(dim)} (axis {axis}); pass (slice, out_dim) to name it"
            )
        out = inferred
    return _DimSlice(start_attr, stop_attr, step, out, True, identity)


def slice_tensor(x: Any, indices: Any) -> TensorValue:
    """Slices out a subtensor view of the input tensor based on indices.

    The semantics of :func:`slice_tensor` follow NumPy basic indexing: slice bounds out of
    range clamp as in numpy (``x[-6::-1]`` of 5 elements is empty, ``x[10:-10:-1]`` is all of
    ``x`` reversed); an ``int`` index must be in range.

    On a symbolic dim ``n`` the result length is inferred when one bound counts from the
    front and the other from the end (``x[1:]`` is ``n - 1``, ``x[2:-1]`` is ``n - 3``,
    ``x[::2]`` is ``(n + 1) // 2``, ``x[:0:-1]`` is ``n - 1``), valid while the bounds need no
    clamping; otherwise (``x[0:2]``) pass ``(slice, out_dim)``. At run time the compiled code
    computes numpy's length and raises ``ValueError`` where it is not the inferred or
    declared one.

    Each index is an ``int`` (drops the dim), a ``slice``, ``...`` (all remaining dims),
    ``None`` (inserts a dim of size 1), or ``(slice, out_dim)``, which names the result dim
    of a slice of a symbolic dim.

    Example:
        ``slice_tensor(x, [slice(None, None, -1)])`` reverses a tensor;
        ``slice_tensor(x, [..., None, slice(None)])`` unsqueezes the second last dimension.

    Args:
        x: The input tensor.
        indices: The indices, one per dim (a sequence, or a single index).

    Returns:
        The sliced subtensor of x.

    Raises:
        ValueError: On too many indices, more than one ``...``, an out-of-range index, a
            zero step, or a slice of a symbolic dim whose length cannot be inferred.
        TypeError: On an index of an unsupported type.
    """
    x = as_strong("slice_tensor", x)
    items: Sequence[Any] = list(indices) if isinstance(indices, tuple | list) else [indices]
    shape = _dims.shape_text(x.shape)
    consumed = 0
    ellipses = 0
    for item in items:
        if item is Ellipsis:
            ellipses += 1
        elif item is not None:
            consumed += 1
    if ellipses > 1:
        raise ValueError("slice_tensor: an index can only have a single ellipsis ('...')")
    if consumed > x.rank:
        raise ValueError(
            f"slice_tensor: too many indices ({consumed}) for a tensor of rank {x.rank} "
            f"(shape {shape})"
        )
    if not ellipses:
        items = [*items, Ellipsis]
    slices: list[_DimSlice] = []
    out_dims: list[Dim] = []
    axis = 0
    for item in items:
        if item is None:
            out_dims.append(Dim(1))
            continue
        if item is Ellipsis:
            for _ in range(x.rank - consumed):
                dim = x.shape[axis]
                slices.append(_DimSlice(INT64_MIN, INT64_MAX, 1, dim, True, True))
                out_dims.append(dim)
                axis += 1
            continue
        dim = x.shape[axis]
        if _is_int(item):
            s = _int_index(int(item), dim, axis, shape)
        elif isinstance(item, slice):
            s = _slice_index(item, None, dim, axis, shape)
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], slice):
            s = _slice_index(item[0], item[1], dim, axis, shape)
        else:
            raise TypeError(
                f"slice_tensor: unsupported index {item!r} ({type(item).__name__}); expected "
                "an int, a slice, (slice, out_dim), None or ..."
            )
        slices.append(s)
        if s.keep:
            out_dims.append(s.out)
        axis += 1
    result = x
    if not all(s.identity for s in slices):
        result = emit(
            "mo.slice", [x], x.dtype, [s.out for s in slices], x.device,
            {
                "starts": [s.start for s in slices],
                "stops": [s.stop for s in slices],
                "steps": [s.step for s in slices],
            },
        )
    if len(out_dims) != result.rank or any(not s.keep for s in slices):
        result = _reshape_to(result, out_dims)
    return result
