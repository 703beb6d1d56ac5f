"""gather_nd, scatter and scatter_nd: compiled and run against numpy/PyTorch (batch dims,
partial index vectors, negative and unsigned indices, duplicates), out-of-range indices
reported as IndexError, shape rules and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ops_helpers import result_type, tt
from hypothesis import given, settings
from hypothesis import strategies as st

from max.dtype import DType
from max.engine import InferenceSession
from max.graph import Graph, ops

_SESSION: list[InferenceSession] = []
RNG = np.random.default_rng(5)


def _load(types, fn):
    if not _SESSION:
        _SESSION.append(InferenceSession())
    return _SESSION[0].load(Graph("indexing", fn, input_types=list(types)))


def _types(*arrays: np.ndarray):
    return [tt(DType.from_numpy(a.dtype), *a.shape) for a in arrays]


def _run(fn, *arrays: np.ndarray) -> np.ndarray:
    return _load(_types(*arrays), fn).execute(*arrays)[0].to_numpy()


def _gather_nd_loop(x: np.ndarray, idx: np.ndarray, b: int) -> np.ndarray:
    """gather_nd written out: one index vector at a time."""
    k = idx.shape[-1]
    out = np.empty((*x.shape[:b], *idx.shape[b:-1], *x.shape[b + k:]), x.dtype)
    for pos in np.ndindex(*idx.shape[:-1]):
        vec = [int(v) % x.shape[b + j] for j, v in enumerate(idx[pos])]
        out[pos] = x[(*pos[:b], *vec)]
    return out


GATHER_ND = [
    (RNG.standard_normal((4, 3)).astype(np.float32), np.array([[1, 2], [-1, 0], [3, -3]]), 0),
    (RNG.standard_normal((4, 3, 2)).astype(np.float32), np.array([[[2], [0]], [[1], [1]]]), 0),
    (RNG.standard_normal((2, 5, 3)).astype(np.float32),
     np.array([[[4, 2], [0, 0], [1, 1]], [[3, 2], [2, -1], [-5, 0]]], np.int32), 1),
    (RNG.integers(0, 9, (2, 3, 4, 2)).astype(np.int64),
     RNG.integers(0, 4, (2, 3, 5, 1)).astype(np.uint8), 2),
    (RNG.standard_normal((3, 2)).astype(np.float16), np.zeros((4, 0), np.int64), 0),
    (RNG.integers(0, 2, (3, 4)).astype(np.bool_), np.array([[[2, 3]], [[0, 1]]], np.int16), 0),
]


@pytest.mark.parametrize(("x", "idx", "b"), GATHER_ND,
                         ids=[f"{c[0].shape}-{c[1].shape}-b{c[2]}" for c in GATHER_ND])
def test_gather_nd_matches_loop(x: np.ndarray, idx: np.ndarray, b: int) -> None:
    got = _run(lambda v, i: ops.gather_nd(v, i, batch_dims=b), x, idx)
    want = _gather_nd_loop(x, idx, b)
    assert got.shape == want.shape and got.dtype == x.dtype
    np.testing.assert_array_equal(got, want)
    if b == 0 and idx.shape[-1]:  # as torch's advanced indexing
        t = torch.from_numpy(x.astype(np.float32) if x.dtype == np.float16 else x)
        coords = tuple(torch.from_numpy(idx[..., j].astype(np.int64))
                       for j in range(idx.shape[-1]))
        np.testing.assert_array_equal(got, t[coords].numpy().astype(x.dtype))


def test_gather_nd_documented_type() -> None:
    t = result_type([tt(DType.bfloat16, "a", "b", "c", "d", "e"), tt(DType.int32, "a", "f", 3)],
                    lambda x, i: ops.gather_nd(x, i, batch_dims=1))
    assert t == tt(DType.bfloat16, "a", "f", "e")


def test_gather_nd_symbolic_dims_and_out_of_range() -> None:
    model = _load([tt(DType.float32, "n", "m"), tt(DType.int64, "k", 2)],
                  lambda x, i: ops.gather_nd(x, i))
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    idx = np.array([[2, 3], [0, -4], [-3, 1]])
    np.testing.assert_array_equal(model.execute(x, idx)[0].to_numpy(), _gather_nd_loop(x, idx, 0))
    for bad in ([[3, 0]], [[0, -5]], [[0, 4]]):
        with pytest.raises(IndexError, match="mo.gather_nd: index out of range"):
            model.execute(x, np.array(bad))
    with pytest.raises(IndexError, match="mo.gather_nd"):  # nothing to read in an empty axis
        model.execute(np.zeros((0, 4), np.float32), np.array([[0, 0]]))
    model.execute(x, idx)  # still usable


@pytest.mark.parametrize("b,x_shape,idx_shape", [(0, (50, 3, 40), (7, 1)),
                                                   (0, (20, 30, 33), (2, 5, 2)),
                                                   (1, (4, 30, 64), (4, 6, 1))])
def test_gather_nd_of_rows_is_vector_code(b: int, x_shape: tuple, idx_shape: tuple) -> None:
    """Indices that pick whole rows (trailing dims left): the row gather's vector loads, no
    plain loops; negative indices wrap, one out of range is still reported."""
    model = _load([tt(DType.float32, *x_shape), tt(DType.int64, *idx_shape)],
                  lambda x, i: ops.gather_nd(x, i, batch_dims=b))
    assert model._record.fallbacks == ()
    x = RNG.standard_normal(x_shape).astype(np.float32)
    k = idx_shape[-1]
    high = np.array(x_shape[b:b + k])
    idx = RNG.integers(-high, high, idx_shape)
    got = model.execute(x, idx)[0].to_numpy()
    np.testing.assert_array_equal(got, _gather_nd_loop(x, idx, b))
    idx.flat[-1] = high[-1]
    with pytest.raises(IndexError, match="mo.gather_nd: index out of range"):
        model.execute(x, idx)


def _scatter_loop(x, updates, idx, axis):
    out = x.copy()
    for pos in np.ndindex(*idx.shape):  # row-major: the last duplicate wins
        dst = list(pos)
        dst[axis] = int(idx[pos]) % x.shape[axis]
        out[tuple(dst)] = updates[pos]
    return out


def test_scatter_matches_torch_on_distinct_indices() -> None:
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    idx = np.stack([RNG.permutation(6)[:3] for _ in range(4)])  # distinct in each row
    u = RNG.standard_normal(idx.shape).astype(np.float32)
    got = _run(lambda a, b, c: ops.scatter(a, b, c), x, u, idx)  # axis=-1 by default
    want = torch.from_numpy(x).scatter(1, torch.from_numpy(idx), torch.from_numpy(u)).numpy()
    np.testing.assert_array_equal(got, want)
    idx0 = np.stack([RNG.permutation(4)[:2] for _ in range(5)], axis=1)  # (2, 5), axis 0
    x0 = RNG.integers(-9, 9, (4, 5, 2)).astype(np.int32)
    idx0 = np.repeat(idx0[:, :, None], 2, axis=2).astype(np.int32)
    u0 = RNG.integers(-9, 9, idx0.shape).astype(np.int32)
    got = _run(lambda a, b, c: ops.scatter(a, b, c, axis=-3), x0, u0, idx0)
    want = torch.from_numpy(x0).scatter(0, torch.from_numpy(idx0).long(),
                                        torch.from_numpy(u0)).numpy()
    np.testing.assert_array_equal(got, want)


def test_scatter_duplicates_negative_indices_and_out_of_range() -> None:
    model = _load([tt(DType.float32, "n", 4), tt(DType.float32, "n", 3),
                   tt(DType.int64, "n", 3)], lambda a, b, c: ops.scatter(a, b, c, axis=1))
    x = np.zeros((2, 4), np.float32)
    u = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    idx = np.array([[1, 1, -1], [0, -4, 2]])  # duplicates: the later update wins
    got = model.execute(x, u, idx)[0].to_numpy()
    np.testing.assert_array_equal(got, _scatter_loop(x, u, idx, 1))
    assert got[0, 1] == 2 and got[1, 0] == 5
    with pytest.raises(IndexError, match="mo.scatter: index out of range for axis 1"):
        model.execute(x, u, np.array([[0, 4, 1], [0, 0, 0]]))
    with pytest.raises(IndexError, match="mo.scatter"):
        model.execute(x, u, np.array([[0, 1, 1], [-5, 0, 0]]))
    np.testing.assert_array_equal(model.execute(x, u, idx)[0].to_numpy(), got)


def test_scatter_nd_matches_torch_index_put() -> None:
    x = RNG.standard_normal((5, 3, 2)).astype(np.float32)
    idx = np.array([[3], [0], [-1]], np.int32)          # rows replaced whole
    u = RNG.standard_normal((3, 3, 2)).astype(np.float32)
    got = _run(lambda a, b, c: ops.scatter_nd(a, b, c), x, u, idx)
    want = torch.from_numpy(x).index_put((torch.tensor([3, 0, 4]),), torch.from_numpy(u))
    np.testing.assert_array_equal(got, want.numpy())
    idx2 = np.array([[[1, 2], [4, 0]], [[0, 0], [2, -1]]], np.int64)  # leading dims (2, 2)
    u2 = RNG.standard_normal((2, 2, 2)).astype(np.float32)
    got = _run(lambda a, b, c: ops.scatter_nd(a, b, c), x, u2, idx2)
    want = torch.from_numpy(x).index_put(
        (torch.tensor([1, 4, 0, 2]), torch.tensor([2, 0, 0, 2])),
        torch.from_numpy(u2.reshape(4, 2)))
    np.testing.assert_array_equal(got, want.numpy())


def test_scatter_nd_full_index_duplicates_and_out_of_range() -> None:
    model = _load([tt(DType.int32, 3, 4), tt(DType.int32, "k"), tt(DType.uint16, "k", 2)],
                  lambda a, b, c: ops.scatter_nd(a, b, c))
    x = np.zeros((3, 4), np.int32)
    u = np.array([1, 2, 3, 4], np.int32)
    idx = np.array([[0, 1], [2, 3], [0, 1], [1, 0]], np.uint16)  # (0, 1) twice: 3 wins
    got = model.execute(x, u, idx)[0].to_numpy()
    want = x.copy()
    want[0, 1], want[2, 3], want[1, 0] = 3, 2, 4
    np.testing.assert_array_equal(got, want)
    with pytest.raises(IndexError, match=r"mo.scatter_nd: index out of range for dims \[3, 4\]"):
        model.execute(x, u, np.array([[0, 1], [3, 0], [0, 0], [0, 0]], np.uint16))
    np.testing.assert_array_equal(model.execute(x, u, idx)[0].to_numpy(), want)


def test_python_values_as_indices_and_updates() -> None:
    with Graph("g", input_types=[tt(DType.float32, 3, 2)]) as g:
        x = g.inputs[0]
        assert ops.gather_nd(x, [[0, 1]]).type == tt(DType.float32, 1)
        assert ops.scatter_nd(x, [[1.0, 2.0]], [[2]]).type == x.type
        assert ops.scatter(x, [[5.0]], [[1]], axis=0).type == x.type


@settings(deadline=None, max_examples=40, derandomize=True)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=4), data=st.data())
def test_gather_nd_shape_rule_matches_the_loop(shape, data) -> None:
    b = data.draw(st.integers(0, len(shape) - 1))
    k = data.draw(st.integers(0, len(shape) - b))
    gather = data.draw(st.lists(st.integers(0, 2), max_size=2))
    x = np.zeros(shape, np.float32)
    idx = np.zeros((*shape[:b], *gather, k), np.int64)
    t = result_type(_types(x, idx), lambda v, i: ops.gather_nd(v, i, batch_dims=b))
    assert tuple(int(d) for d in t.shape) == _gather_nd_loop(x, idx, b).shape


@pytest.mark.parametrize(("fn", "error", "match"), [
    (lambda x, i, f: ops.gather_nd(x, f), ValueError, "gather_nd: indices must have an integer"),
    (lambda x, i, f: ops.gather_nd(x, i, batch_dims=-1), ValueError, "batch_dims=-1"),
    (lambda x, i, f: ops.gather_nd(x, i, batch_dims=1.5), TypeError, "batch_dims must be an int"),
    (lambda x, i, f: ops.gather_nd(x, i, batch_dims=2), ValueError, "needs rank >= batch_dims"),
    (lambda x, i, f: ops.gather_nd(x, ops.reshape(i, [2, 2, 1]), batch_dims=1), ValueError,
     "must match exactly on their first 1"),
    (lambda x, i, f: ops.gather_nd(x, ops.reshape(i, [1, 4])), ValueError,
     r"index vector size \(0 \+ 4\) exceeds"),
    (lambda x, i, f: ops.scatter(x, x, i), ValueError, "scatter: updates and indices"),
    (lambda x, i, f: ops.scatter(x, ops.cast(i, DType.float64), i), ValueError,
     "scatter: updates have dtype float64, input has float32"),
    (lambda x, i, f: ops.scatter(x, ops.cast(i, DType.float32), i), ValueError,
     "scatter: indices must have the rank of input"),
    (lambda x, i, f: ops.scatter(x, f, f), ValueError, "scatter: indices must have an integer"),
    (lambda x, i, f: ops.scatter(x, x, ops.cast(x, DType.int32), axis=2), ValueError,
     "scatter: axis=2 is out of range"),
    (lambda x, i, f: ops.scatter_nd(x, f, ops.reshape(i, [2, 2])), ValueError,
     r"scatter_nd: updates must have shape indices.shape\[:-1\] \+ input.shape\[2:\] = \[2\]"),
    (lambda x, i, f: ops.scatter_nd(x, x, ops.reshape(i, [1, 4])), ValueError,
     "scatter_nd: the last dimension of indices must be static and at most the rank"),
    (lambda x, i, f: ops.scatter_nd(np.zeros(2), x, i), TypeError, "scatter_nd: input must be"),
])
def test_errors_name_the_op_and_argument(fn, error, match) -> None:
    types = [tt(DType.float32, 4, 3), tt(DType.int64, 4), tt(DType.float32, 4)]
    with Graph("g", input_types=types) as g, pytest.raises(error, match=match):
        fn(*g.inputs)


def test_scatter_with_a_symbolic_indices_dim_must_match_input() -> None:
    with Graph("g", input_types=[tt(DType.float32, "n", 3), tt(DType.int64, "m", 3)]) as g:
        x, i = g.inputs
        with pytest.raises(ValueError, match="scatter: dimension 0 of indices must be at most"):
            ops.scatter(x, ops.cast(i, DType.float32), i, axis=1)


def _scatter_nd_loop(x, updates, idx):
    out = x.copy()
    for pos in np.ndindex(*idx.shape[:-1]):  # row-major: the last duplicate wins
        out[tuple(int(v) % x.shape[j] for j, v in enumerate(idx[pos]))] = updates[pos]
    return out


@settings(deadline=None, max_examples=10, derandomize=True)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), data=st.data())
def test_random_scatters_and_gathers_match_the_loops(shape, data) -> None:
    """Random in-range indices (negative ones and duplicates included) on random shapes."""
    rank = len(shape)
    x = RNG.standard_normal(shape).astype(np.float32)
    axis = data.draw(st.integers(0, rank - 1))
    ishape = [data.draw(st.integers(1, n)) if i != axis else data.draw(st.integers(1, 4))
              for i, n in enumerate(shape)]
    idx = RNG.integers(-shape[axis], shape[axis], ishape)
    u = RNG.standard_normal(ishape).astype(np.float32)
    got = _run(lambda a, b, c: ops.scatter(a, b, c, axis=axis), x, u, idx)
    np.testing.assert_array_equal(got, _scatter_loop(x, u, idx, axis))

    k = data.draw(st.integers(1, rank))
    lead = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2))
    nd = np.stack([RNG.integers(-shape[j], shape[j], lead) for j in range(k)], axis=-1)
    un = RNG.standard_normal((*lead, *shape[k:])).astype(np.float32)
    got = _run(lambda a, b, c: ops.scatter_nd(a, b, c), x, un, nd)
    np.testing.assert_array_equal(got, _scatter_nd_loop(x, un, nd))
    got = _run(lambda a, c: ops.gather_nd(a, c), x, nd)
    np.testing.assert_array_equal(got, _gather_nd_loop(x, nd, 0))
