"""Slices compiled and run against numpy: random bounds (negative, out of range, None) and
steps, on static shapes (empty ones included) and on symbolic dims. Each example builds one
graph with an output per index, so a handful of compiles covers many slices."""

from __future__ import annotations

import numpy as np
import pytest
from ops_helpers import shared_session, tt
from hypothesis import given, settings
from hypothesis import strategies as st

from max.dtype import DType
from max.graph import Graph, ops


def _load(graph: Graph):
    return shared_session().load(graph)


STEPS = [None, 1, 2, 3, -1, -2, -3]
# Bounds up to 7 past either end: out of range for every size the tests use.
BOUNDS = st.one_of(st.none(), st.integers(-12, 12))
slices = st.builds(slice, BOUNDS, BOUNDS, st.sampled_from(STEPS))


@st.composite
def static_index(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[object, ...]:
    """A slice or an in-range int per dim (ints only where the dim is not empty)."""
    items: list[object] = []
    for n in shape:
        if n and draw(st.integers(0, 4)) == 0:
            items.append(draw(st.integers(-n, n - 1)))
        else:
            items.append(draw(slices))
    return tuple(items)


def _run_all(shape, dims, indices, x):
    """Builds x[index] for each index as outputs of one graph and runs it on ``x``."""
    graph = Graph("slices", lambda v: [ops.slice_tensor(v, i) for i in indices],
                  input_types=[tt(DType.int32, *dims)])
    return [o.to_numpy() for o in _load(graph).execute(x)]


@settings(deadline=None, max_examples=12, derandomize=True)
@given(data=st.data(), shape=st.lists(st.integers(0, 5), min_size=1, max_size=2).map(tuple))
def test_static_slices_match_numpy(data, shape) -> None:
    indices = data.draw(st.lists(static_index(shape), min_size=1, max_size=6))
    x = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    for index, got in zip(indices, _run_all(shape, shape, indices, x)):
        np.testing.assert_array_equal(got, x[index], err_msg=str(index))
        assert got.shape == x[index].shape, index


def _inferable(index: slice) -> bool:
    """Whether the builder infers the length of ``index`` on a symbolic dim (see slice.py)."""
    a, b, s = index.start, index.stop, index.step or 1
    if (a, b, s) == (None, None, 1):
        return True
    if s > 0:
        return (a is None or a >= 0) and (b is None or b < 0)
    return (a is None or a < 0) and (b is None or b >= 0)


@settings(deadline=None, max_examples=8, derandomize=True)
@given(indices=st.lists(slices, min_size=1, max_size=6))
def test_symbolic_slices_match_numpy_or_raise(indices) -> None:
    """One model over ("n", 3) serves every n: where the inferred lengths hold at this n the
    outputs are numpy's, else the call raises ValueError (never a wrong or partial result)."""
    inferable = [i for i in indices if _inferable(i)]
    for index in indices:
        if not _inferable(index):
            with pytest.raises(ValueError, match="cannot infer the length"):
                Graph("s", lambda v, i=index: v[i], input_types=[tt(DType.int32, "n", 3)])
    if not inferable:
        return
    # Axis 1 is static: the same slices there follow the static rules in the same graph.
    items = [(i, inferable[k % len(inferable)]) for k, i in enumerate(inferable)]
    graph = Graph("sym", lambda v: [v[i] for i in items], input_types=[tt(DType.int32, "n", 3)])
    model = _load(graph)
    for n in range(0, 16):
        x = np.arange(n * 3, dtype=np.int32).reshape(n, 3)
        expected = [x[i] for i in items]
        declared = [eval(str(t.shape[0]), {"n": n}) for t in graph.output_types]  # noqa: S307
        if all(d == e.shape[0] for d, e in zip(declared, expected)):
            for index, got, want in zip(items, model.execute(x), expected):
                np.testing.assert_array_equal(got.to_numpy(), want, err_msg=f"n={n} {index}")
        else:
            with pytest.raises(ValueError, match="negative shape|declared length"):
                model.execute(x)
    # Large sizes never clamp: every inferred length holds.
    x = np.arange(40 * 3, dtype=np.int32).reshape(40, 3)
    for index, got in zip(items, model.execute(x)):
        np.testing.assert_array_equal(got.to_numpy(), x[index], err_msg=str(index))


@pytest.mark.parametrize(
    ("shape", "index"),
    [
        ((1,), np.s_[1:]),  # was an internal compiler error (extract_slice offset 1 of 1)
        ((2, 1), np.s_[:, 1:]),
        ((0, 3), np.s_[0:, 1:]),
        ((5,), np.s_[-6::-1]),  # was "slice has length 5, result type says 0"
        ((5,), np.s_[10:-10:-1]),
        ((5,), np.s_[::-2]),
        ((5,), np.s_[3:0:-1]),
        ((5,), np.s_[-100:100]),
        ((5,), np.s_[2**70:]),
        ((5,), np.s_[::2**70]),
        ((5, 2), np.s_[5:, ::-1]),
    ],
)
def test_edge_slices(shape, index) -> None:
    x = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    (got,) = _run_all(shape, shape, [index], x)
    assert got.shape == x[index].shape
    np.testing.assert_array_equal(got, x[index])


def test_symbolic_empty_and_huge_bounds() -> None:
    """x[1:] of n = 1 is empty; bounds past int64 clamp instead of overflowing the attribute."""
    indices = [np.s_[1:], np.s_[::-1], [(slice(None, 2**70), "n")], [(slice(2**70, None, -1), "n")]]
    x = np.arange(1, dtype=np.int32)
    got = _run_all(None, ("n",), indices, x)
    for index, want in zip(indices, [x[1:], x[::-1], x, x]):
        np.testing.assert_array_equal(got.pop(0), want, err_msg=str(index))
    with pytest.raises(ValueError, match="cannot infer the length"):
        Graph("s", lambda v: v[-(2**70):], input_types=[tt(DType.int32, "n")])


def test_int_index_of_symbolic_dim_out_of_range_is_index_error() -> None:
    """x[i] of a symbolic dim is checked at run time, as numpy's IndexError (the message used
    to speak of a "declared length 1")."""
    graph = Graph("ix", lambda v: [v[2], v[-3]], input_types=[tt(DType.int32, "n", 2)])
    model = _load(graph)
    x = np.arange(8, dtype=np.int32).reshape(4, 2)
    got = model.execute(x)
    np.testing.assert_array_equal(got[0].to_numpy(), x[2])
    np.testing.assert_array_equal(got[1].to_numpy(), x[-3])
    with pytest.raises(IndexError, match=r"mo.slice: index 2 is out of bounds for dim 0 of "
                                         r"size n; mo.slice: index -3 is out of bounds"):
        model.execute(x[:2])


def test_inferred_length_negative_at_run_time_is_value_error() -> None:
    """x[1:] of n is n - 1: at n = 0 numpy's result is empty, but the type says -1."""
    model = _load(Graph("tail", lambda v: v[1:], input_types=[tt(DType.int32, "n")]))
    with pytest.raises(ValueError, match=r"would have negative shape \(-1,\)"):
        model.execute(np.zeros(0, np.int32))
