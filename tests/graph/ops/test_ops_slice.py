"""``slice_tensor`` and ``TensorValue.__getitem__``: numpy's result shapes, symbolic dims,
the ``(slice, out_dim)`` form, the normalized ``mo.slice`` attributes, errors."""

from __future__ import annotations

import numpy as np
import pytest
from ops_helpers import build, filecheck, graph_of, result_type, tt
from hypothesis import given, settings
from hypothesis import strategies as st

from max.dtype import DType
from max.graph import Dim, ops

MIN, MAX = -(2**63), 2**63 - 1


def _shape(t) -> list[str]:
    return [str(d) for d in t.shape]


@st.composite
def index_for(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[object, ...]:
    """A basic index for ``shape``: int indices in range, slice bounds anywhere (they clamp)."""
    items: list[object] = []
    axis = 0
    use_ellipsis = draw(st.booleans())
    n_consumed = draw(st.integers(0, len(shape)))
    ellipsis_at = draw(st.integers(0, n_consumed))
    for i in range(n_consumed):
        if use_ellipsis and i == ellipsis_at:
            items.append(Ellipsis)
            axis = len(shape) - (n_consumed - i)
        if draw(st.booleans()):
            items.append(None)
        n = shape[axis]
        kind = draw(st.sampled_from(["int", "slice"]))
        if kind == "int":
            items.append(draw(st.integers(-n, n - 1)))
        else:
            step = draw(st.sampled_from([None, 1, 2, 3, -1, -2]))
            bound = st.one_of(st.none(), st.integers(-n - 3, n + 3))
            items.append(slice(draw(bound), draw(bound), step))
        axis += 1
    if use_ellipsis and ellipsis_at == n_consumed:
        items.append(Ellipsis)
    if draw(st.booleans()):
        items.append(None)
    return tuple(items)


@settings(deadline=None, max_examples=200)
@given(data=st.data(), shape=st.lists(st.integers(1, 5), max_size=4).map(tuple))
def test_slice_shapes_agree_with_numpy(data, shape) -> None:
    index = data.draw(index_for(shape))
    expected = np.zeros(shape)[index].shape
    t = result_type([tt(DType.float32, *shape)], lambda x: x[index])
    assert tuple(int(d) for d in t.shape) == expected


@pytest.mark.parametrize(
    ("shape", "index", "expected"),
    [
        (("batch", 3), (slice(None), 1), ["batch"]),
        (("batch", 3), (0,), ["3"]),
        (("batch", 3), (-1,), ["3"]),
        (("batch", 3), (Ellipsis, None), ["batch", "3", "1"]),
        (("batch", 3), (None, Ellipsis, slice(None)), ["1", "batch", "3"]),
        (("batch", 3), (slice(None, None, -1),), ["batch", "3"]),
        (("batch", 3), (slice(1, None),), ["batch - 1", "3"]),
        (("batch", 3), (slice(None, -1),), ["batch - 1", "3"]),
        (("batch", 3), (slice(2, -1),), ["batch - 3", "3"]),
        (("batch", 3), (slice(None, None, 2),), ["(batch + 1) // 2", "3"]),
        (("batch", 3), (slice(1, -2, 3),), ["(batch - 1) // 3", "3"]),
        (("batch", 3), (slice(None, None, -2),), ["(batch + 1) // 2", "3"]),
        (("batch", 3), (slice(-2, None, -1),), ["batch - 1", "3"]),
        (("batch", 3), (slice(None, 0, -1),), ["batch - 1", "3"]),
        (("batch", 3), (slice(-1, 2, -1),), ["batch - 3", "3"]),
        (("batch", 3), (slice(None), slice(10, -10, -1)), ["batch", "3"]),
        (("batch", 3), (slice(None), slice(-6, None, -1)), ["batch", "0"]),
        (("batch", 3), ((slice(0, 4), 4),), ["4", "3"]),
        (("batch", 3), ((slice(None, None, 2), "half"),), ["half", "3"]),
        (("batch", 3), ((slice(1, None), Dim("batch") - 1), 0), ["batch - 1"]),
        ((5, 3), ((slice(1, 3), 2), 0), ["2"]),
    ],
)
def test_slice_symbolic(shape, index, expected) -> None:
    assert _shape(result_type([tt(DType.float32, *shape)], lambda x: ops.slice_tensor(x, index))) == expected


def test_slice_ir_static() -> None:
    g = build([tt(DType.float32, 4, 6)], lambda x: x[1:-1, ::-2])
    filecheck(str(g), f"""
    CHECK: "mo.slice"(%arg0) {{starts = array<i64: 1, 5>, steps = array<i64: 1, -2>, stops = array<i64: 3, {MIN}>}}
    CHECK-SAME: -> !mo.tensor<f32, [2, 3], "cpu:0">
    CHECK-NOT: mo.reshape
    """)


def test_slice_ir_symbolic_and_int_index() -> None:
    g = build([tt(DType.float32, "batch", 6)], lambda x: x[-1, 2:])
    filecheck(str(g), """
    CHECK: %0 = "mo.slice"(%arg0) {starts = array<i64: -1, 2>, steps = array<i64: 1, 1>, stops = array<i64: 9223372036854775807, 6>}
    CHECK-SAME: -> !mo.tensor<f32, [1, 4], "cpu:0">
    CHECK-NEXT: %1 = "mo.reshape"(%0) {{.*}} -> !mo.tensor<f32, [4], "cpu:0">
    """)


def test_slice_ir_missing_bounds_use_int64_limits() -> None:
    g = build([tt(DType.float32, "batch")], lambda x: x[::-1])
    filecheck(str(g), f"""
    CHECK: "mo.slice"(%arg0) {{starts = array<i64: {MAX}>, steps = array<i64: -1>, stops = array<i64: {MIN}>}}
    """)


def test_full_slices_and_new_axes_only_reshape() -> None:
    g = build([tt(DType.float32, "batch", 3)], lambda x: x[:, None])
    filecheck(str(g), """
    CHECK-NOT: mo.slice
    CHECK: "mo.reshape"(%arg0) {{.*}} -> !mo.tensor<f32, ["batch", 1, 3], "cpu:0">
    """)
    with graph_of(tt(DType.float32, 2)) as gr:
        x = gr.inputs[0]
        assert x[...] is x and x[:] is x
    with graph_of(tt(DType.float32, 0, 2)) as gr:
        x = gr.inputs[0]
        assert x[:] is x and x[:, :] is x  # an empty dim's full slice is no op either


@pytest.mark.parametrize(
    ("shape", "index", "error", "match"),
    [
        ((3,), (3,), ValueError, r"slice_tensor: index 3 is out of bounds for axis 0 with size 3"),
        ((3,), (-4,), ValueError, r"index -4 is out of bounds"),
        ((3, 2), (0, 0, 0), ValueError, r"slice_tensor: too many indices \(3\) for a tensor of rank 2"),
        ((3, 2), (Ellipsis, 0, Ellipsis), ValueError, r"only have a single ellipsis"),
        ((3,), (slice(None, None, 0),), ValueError, r"slice step cannot be zero"),
        (("batch",), (slice(0, 2),), ValueError, r"cannot infer the length of slice\(0, 2, None\) on symbolic dim batch .*pass \(slice, out_dim\)"),
        (("batch",), (slice(-3, None),), ValueError, r"cannot infer the length of slice\(-3, None, None\)"),
        (("batch",), (slice(None, -1, -1),), ValueError, r"cannot infer the length of slice\(None, -1, -1\)"),
        ((4,), ((slice(0, 2), 3),), ValueError, r"out_dim 3 does not match the slice length 2"),
        ((3,), ("a",), TypeError, r"slice_tensor: unsupported index 'a'"),
        ((3,), (slice(0.5, None),), TypeError, r"slice start must be an int or None"),
    ],
)
def test_slice_errors(shape, index, error, match) -> None:
    with pytest.raises(error, match=match):
        result_type([tt(DType.float32, *shape)], lambda x: ops.slice_tensor(x, index))
