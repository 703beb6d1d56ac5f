"""stack, split, chunk, tile and outer (composites): numerics against numpy/PyTorch with
negative axes and symbolic dims, shape rules by hypothesis, and the errors they raise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ops_helpers import result_type, tt
from hypothesis import given
from hypothesis import strategies as st
from test_ops_numeric import check, run

from max.dtype import DType
from max.graph import Dim, ops

RNG = np.random.default_rng(5)


def _f32(*shape: int) -> np.ndarray:
    return RNG.uniform(-3, 3, shape).astype(np.float32)


# -- stack -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack_matches_numpy(axis: int) -> None:
    xs = [_f32(2, 3) for _ in range(3)]
    (got,) = run(lambda *v: ops.stack(v, axis), [tt(DType.float32, "b", 3)] * 3, *xs)
    check(got, np.stack(xs, axis))


def test_stack_of_one_and_shape_to_tensor() -> None:
    x = RNG.integers(0, 9, (4,)).astype(np.int64)
    (got,) = run(lambda v: ops.stack([v]), [tt(DType.int64, "n")], x)
    check(got, x[None])
    # the reference's example: a value beside its own shape
    (got,) = run(lambda v: ops.stack([v, ops.shape_to_tensor(v.shape)]), [tt(DType.int64, 1)],
                 np.array([7]))
    check(got, np.array([[7], [1]]))


def test_stack_errors() -> None:
    two = [tt(DType.float32, 2, 3), tt(DType.float32, 2, 3)]
    with pytest.raises(ValueError, match="stack: expected at least one tensor"):
        result_type([], lambda: ops.stack([]))
    with pytest.raises(ValueError, match=r"stack: axis=3 is out of range .* \(expected -3 <= "
                                         r"axis <= 2\)"):
        result_type(two, lambda a, b: ops.stack([a, b], 3))
    with pytest.raises(ValueError, match=r"stack: all inputs must have one shape: values\[0\] is "
                                         r"\[2, 3\], values\[1\] is \[3, 2\]"):
        result_type([tt(DType.float32, 2, 3), tt(DType.float32, 3, 2)],
                    lambda a, b: ops.stack([a, b]))
    with pytest.raises(ValueError, match="stack: all inputs must have one dtype"):
        result_type([tt(DType.float32, 2), tt(DType.int32, 2)], lambda a, b: ops.stack([a, b]))
    with pytest.raises(TypeError, match="stack: values must be a list of tensors"):
        result_type(two, lambda a, b: ops.stack(a))
    with pytest.raises(TypeError, match=r"stack: values\[1\] must be a graph value"):
        result_type(two, lambda a, b: ops.stack([a, 1.0]))


# -- long chains: the lowering copies each leaf once (see lowering/shape_ops.py) ----------------


def test_stack_of_many_with_a_symbolic_dim() -> None:
    xs = [_f32(3, 4) for _ in range(40)]
    (got,) = run(lambda *v: ops.stack(v, 1), [tt(DType.float32, "b", 4)] * 40, *xs)
    check(got, np.stack(xs, 1))


@pytest.mark.parametrize("axis", [0, -1])
def test_concat_of_many_mixed_static_and_symbolic_sizes(axis: int) -> None:
    sizes = [1, "n", 3, 2, "m", 1, "n", 5, 4, "m", 2, 1]
    names = {"n": 2, "m": 0}  # m is empty at run time
    lengths = [names.get(s, s) for s in sizes]
    xs = [_f32(2, k) if axis == -1 else _f32(k, 2) for k in lengths]
    types = [tt(DType.float32, 2, s) if axis == -1 else tt(DType.float32, s, 2) for s in sizes]
    (got,) = run(lambda *v: ops.concat(v, axis), types, *xs)
    check(got, np.concatenate(xs, axis))


def test_concat_chain_with_shared_intermediates() -> None:
    # r is used by the chain and by a negation (the chain being its latest use), q by the
    # chain and as an output, s twice by one concat; u joins on another axis: none of them
    # may be folded into its consumer's copies.
    def fn(a, b, c, d):
        r = ops.concat([a, b])
        minus_r = -r
        s = ops.concat([r, c])
        t = ops.concat([s, d])
        u = ops.concat([ops.concat([a, c]), ops.concat([b, d])], 1)
        right = ops.concat([a, ops.concat([b, ops.concat([c, d])])])
        q = ops.concat([c, d])
        return t, ops.concat([q, a]), ops.concat([s, s]), right, u, minus_r, q

    xs = [_f32(2, 3) for _ in range(4)]
    a, b, c, d = xs
    got = run(fn, [tt(DType.float32, "k", 3)] * 4, *xs)
    want = [np.concatenate([a, b, c, d]), np.concatenate([c, d, a]),
            np.concatenate([a, b, c, a, b, c]), np.concatenate([a, b, c, d]),
            np.concatenate([np.concatenate([a, c]), np.concatenate([b, d])], 1),
            -np.concatenate([a, b]), np.concatenate([c, d])]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        check(g, w)


# -- split and chunk -------------------------------------------------------------------------------


def test_split_matches_torch() -> None:
    x = _f32(3, 7)
    got = run(lambda v: ops.split(v, [2, 0, 5], -1), [tt(DType.float32, "b", 7)], x)
    want = torch.split(torch.from_numpy(x), [2, 0, 5], -1)
    assert len(got) == 3
    for g, w in zip(got, want):
        check(g, w.numpy())


def test_split_last_size_symbolic() -> None:
    types = [tt(DType.float32, 2, "n")]
    for n in (3, 9):
        x = _f32(2, n)
        got = run(lambda v: ops.split(v, [1, 2, Dim("n") - 3], 1), types, x)
        for g, w in zip(got, np.split(x, [1, 3], 1)):
            check(g, w)
    # n = 2 < 3: the last piece would have a negative length; n = 1 < 3 leaves the middle
    # piece short, which the compiled slice reports.
    with pytest.raises(ValueError, match="negative shape"):
        run(lambda v: ops.split(v, [1, 2, Dim("n") - 3], 1), types, _f32(2, 2))
    with pytest.raises(ValueError, match="mo.slice: dim 1 of the slice does not have the "
                                         "declared length 2"):
        run(lambda v: ops.split(v, [1, 2, Dim("n") - 3], 1)[1], types, _f32(2, 2))


@given(sizes=st.lists(st.integers(0, 4), min_size=1, max_size=5), axis=st.integers(-3, 2))
def test_split_shape_rule(sizes: list[int], axis: int) -> None:
    shape = [2, 3, 4]
    shape[axis] = sum(sizes)
    for i, size in enumerate(sizes):  # each piece's type, built alone
        t = result_type([tt(DType.float32, *shape)], lambda v, i=i: ops.split(v, sizes, axis)[i])
        want = list(shape)
        want[axis] = size
        assert [int(d) for d in t.shape] == want


def test_split_errors() -> None:
    f = [tt(DType.float32, 4, "n")]
    with pytest.raises(ValueError, match=r"split: split_sizes \[1, 2\] add up to 3, not to dim 0 "
                                         r"of \[4, n\] \(4\)"):
        result_type(f, lambda v: ops.split(v, [1, 2]))
    with pytest.raises(ValueError, match=r"split: split_sizes\[0\] = -1 is negative"):
        result_type(f, lambda v: ops.split(v, [-1, 5]))
    with pytest.raises(ValueError, match=r"split: split_sizes\[0\] = n is symbolic; only the last"):
        result_type(f, lambda v: ops.split(v, ["n", 0], 1))
    with pytest.raises(ValueError, match="split: axis=2 is out of range"):
        result_type(f, lambda v: ops.split(v, [4], 2))
    with pytest.raises(TypeError, match="split: split_sizes must be a sequence of dims"):
        result_type(f, lambda v: ops.split(v, 4))


@pytest.mark.parametrize("axis", [0, -1])
def test_chunk_matches_torch(axis: int) -> None:
    x = _f32(6, 6)
    got = run(lambda v: ops.chunk(v, 3, axis), [tt(DType.float32, 6, 6)], x)
    for g, w in zip(got, torch.chunk(torch.from_numpy(x), 3, axis), strict=True):
        check(g, w.numpy())


def test_chunk_of_a_symbolic_dim() -> None:
    # [n, 3] flattened is 3 * n: three chunks of n each, whatever n is.
    types = [tt(DType.int32, "n", 3)]
    for n in (1, 4):
        x = RNG.integers(-9, 9, (n, 3)).astype(np.int32)
        got = run(lambda v: ops.chunk(ops.flatten(v), 3), types, x)
        for g, w in zip(got, np.split(x.reshape(-1), 3), strict=True):
            check(g, w)
    t = result_type(types, lambda v: ops.chunk(ops.flatten(v), 3)[2])
    assert list(t.shape) == [Dim("n")]


def test_chunk_errors() -> None:
    with pytest.raises(ValueError, match=r"chunk: chunks=2 does not statically evenly divide dim "
                                         r"0 \(5\) of \[5\]"):
        result_type([tt(DType.float32, 5)], lambda v: ops.chunk(v, 2))
    with pytest.raises(ValueError, match=r"chunk: chunks=2 does not statically evenly divide dim "
                                         r"0 \(n\)"):
        result_type([tt(DType.float32, "n")], lambda v: ops.chunk(v, 2))
    with pytest.raises(ValueError, match="chunk: chunks=0 must be positive"):
        result_type([tt(DType.float32, 4)], lambda v: ops.chunk(v, 0))
    with pytest.raises(TypeError, match="chunk: chunks must be an int"):
        result_type([tt(DType.float32, 4)], lambda v: ops.chunk(v, 2.0))
    with pytest.raises(ValueError, match="chunk: axis=1 is out of range"):
        result_type([tt(DType.float32, 4)], lambda v: ops.chunk(v, 2, 1))


# -- tile ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("repeats", [[2, 1], [1, 3], [3, 2], [1, 1]])
def test_tile_matches_numpy(repeats: list[int]) -> None:
    x = _f32(2, 3)
    (got,) = run(lambda v: ops.tile(v, repeats), [tt(DType.float32, "b", 3)], x)
    check(got, np.tile(x, repeats))


@pytest.mark.parametrize("shape,repeats", [((2, 3), [3, 2]), ((5, 7, 3), [2, 1, 4]),
                                           ((64, 33), [1, 4]), ((1,), [5]), ((4, 1, 6), [1, 3, 1])])
@pytest.mark.parametrize("dtype", [DType.float32, DType.int64, DType.bool, DType.float16])
def test_tile_of_static_shapes_matches_numpy(shape: tuple, repeats: list[int],
                                             dtype: DType) -> None:
    """Static sizes: one broadcast generic over [.., repeat, dim, ..], reshaped (and fused
    into a consumer)."""
    x = (RNG.standard_normal(shape) * 4).astype(dtype.to_numpy())
    (got,) = run(lambda v: ops.tile(v, repeats), [tt(dtype, *shape)], x)
    check(got, np.tile(x, repeats))
    if dtype == DType.float32:
        (got,) = run(lambda v: ops.tile(v, repeats) * 2.0, [tt(dtype, *shape)], x)
        check(got, np.tile(x, repeats) * np.float32(2))


def test_tile_symbolic_repeats_and_dims() -> None:
    types = [tt(DType.int64, "b", 2), tt(DType.int64, "r")]
    x = RNG.integers(0, 9, (3, 2))
    (got,) = run(lambda v, r: ops.tile(v, [r.shape[0], 2]), types, x, np.zeros(4, np.int64))
    check(got, np.tile(x, (4, 2)))
    (got,) = run(lambda v, r: ops.tile(v, [r.shape[0], 2]), types, x, np.zeros(0, np.int64))
    check(got, np.zeros((0, 4), np.int64))  # a symbolic repeat of 0 at run time
    (got,) = run(lambda v, r: ops.tile(v, [r.shape[0], 2]), types, x[:0], np.zeros(3, np.int64))
    check(got, np.zeros((0, 4), np.int64))  # an empty x
    t = result_type(types, lambda v, r: ops.tile(v, ["r", 3]))
    assert list(t.shape) == [Dim("b") * Dim("r"), Dim(6)]


@given(shape=st.lists(st.integers(0, 3), max_size=3), data=st.data())
def test_tile_shape_rule_agrees_with_numpy(shape: list[int], data) -> None:
    repeats = data.draw(st.lists(st.integers(1, 3), min_size=len(shape), max_size=len(shape)))
    t = result_type([tt(DType.float32, *shape)], lambda v: ops.tile(v, repeats))
    assert [int(d) for d in t.shape] == list(np.tile(np.zeros(shape), repeats).shape)


def test_tile_errors() -> None:
    f = [tt(DType.float32, 2, 3)]
    with pytest.raises(ValueError, match=r"tile: repeats has 1 values, one per dim of \[2, 3\]"):
        result_type(f, lambda v: ops.tile(v, [2]))
    with pytest.raises(ValueError, match=r"tile: repeats\[1\] = 0 must be positive"):
        result_type(f, lambda v: ops.tile(v, [1, 0]))
    with pytest.raises(ValueError, match="tile: repeats uses the symbol 'k', which no graph input"):
        result_type(f, lambda v: ops.tile(v, [1, "k"]))
    with pytest.raises(TypeError, match="tile: repeats must be a sequence of dims"):
        result_type(f, lambda v: ops.tile(v, 2))


# -- outer -----------------------------------------------------------------------------------------


def test_outer_matches_torch() -> None:
    a, b = _f32(3), _f32(4)
    (got,) = run(ops.outer, [tt(DType.float32, "n"), tt(DType.float32, 4)], a, b)
    check(got, torch.outer(torch.from_numpy(a), torch.from_numpy(b)).numpy())
    # any shape is flattened first; ints promote as in mul
    m = RNG.integers(-5, 5, (2, 2)).astype(np.int32)
    v = RNG.integers(-5, 5, (3,)).astype(np.int64)
    (got,) = run(ops.outer, [tt(DType.int32, 2, 2), tt(DType.int64, 3)], m, v)
    check(got, np.outer(m, v))
    t = result_type([tt(DType.float32, "n", 2), tt(DType.float32, "m")], ops.outer)
    assert list(t.shape) == [Dim("n") * 2, Dim("m")]


def test_outer_errors() -> None:
    with pytest.raises(ValueError, match=r"outer: cannot promote dtypes \(uint8, int8\)"):
        result_type([tt(DType.uint8, 2), tt(DType.int8, 2)], ops.outer)
    with pytest.raises(TypeError, match="outer: needs at least one graph value"):
        result_type([], lambda: ops.outer(1, 2))
