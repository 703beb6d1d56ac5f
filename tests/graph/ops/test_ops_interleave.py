"""repeat_interleave (int repeats) against torch.repeat_interleave, as_interleaved_complex
against numpy's view of pairs as complex numbers; shape rules and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ops_helpers import result_type, tt
from hypothesis import given, settings
from hypothesis import strategies as st

from max.dtype import DType
from max.engine import InferenceSession
from max.graph import Dim, Graph, ops

_SESSION: list[InferenceSession] = []
RNG = np.random.default_rng(3)


def _run(dims, fn, x: np.ndarray) -> np.ndarray:
    if not _SESSION:
        _SESSION.append(InferenceSession())
    graph = Graph("interleave", fn, input_types=[tt(DType.from_numpy(x.dtype), *dims)])
    return _SESSION[0].load(graph).execute(x)[0].to_numpy()


@pytest.mark.parametrize(("shape", "dims", "repeats", "axis"), [
    ((2, 2), (2, 2), 2, 0),
    ((2, 2), (2, 2), 2, 1),
    ((2, 2), (2, 2), 2, None),
    ((3, 4, 2), ("a", 4, "b"), 3, -2),
    ((3, 4, 2), ("a", 4, "b"), 1, -1),
    ((3,), ("n",), 4, None),
    ((0, 3), ("n", 3), 2, 0),
])
def test_repeat_interleave_matches_torch(shape, dims, repeats, axis) -> None:
    x = RNG.integers(-9, 9, shape).astype(np.int32)
    got = _run(dims, lambda v: ops.repeat_interleave(v, repeats, axis=axis), x)
    want = torch.repeat_interleave(torch.from_numpy(x), repeats, dim=axis).numpy()
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_repeat_interleave_documented_example_and_types() -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    got = _run((2, 2), lambda v: ops.repeat_interleave(v, 2, axis=0), x)
    np.testing.assert_array_equal(got, [[1.0, 2.0], [1.0, 2.0], [3.0, 4.0], [3.0, 4.0]])
    t = result_type([tt(DType.float32, "n", 3)],
                    lambda v: ops.repeat_interleave(v, 2, axis=0, out_dim=Dim("n") * 2))
    assert t == tt(DType.float32, Dim("n") * 2, 3)
    t = result_type([tt(DType.float32, "n", 3)], lambda v: ops.repeat_interleave(v, 3))
    assert t == tt(DType.float32, Dim("n") * 9)


@settings(deadline=None, max_examples=30, derandomize=True)
@given(shape=st.lists(st.sampled_from([1, 2, 5, "n"]), min_size=1, max_size=3),
       repeats=st.integers(1, 4), data=st.data())
def test_repeat_interleave_shape_rule(shape, repeats, data) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    t = result_type([tt(DType.float32, *shape)],
                    lambda v: ops.repeat_interleave(v, repeats, axis=axis))
    with Graph("g", input_types=[tt(DType.float32, *shape)]) as g:
        want = list(g.inputs[0].shape)
    want[axis] = want[axis] * repeats
    assert list(t.shape) == want


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"repeats": 0}, ValueError, "repeat_interleave: repeats must be positive, got 0"),
    ({"repeats": -2}, ValueError, "repeats must be positive"),
    ({"repeats": 2.0}, TypeError, "repeat_interleave: repeats must be an int"),
    ({"repeats": True}, TypeError, "repeats must be an int"),
    ({"repeats": 2, "axis": 2}, ValueError, "repeat_interleave: axis=2 is out of range"),
    ({"repeats": 2, "axis": 0, "out_dim": 5}, ValueError, "out_dim=5 is not the repeated size 6"),
])
def test_repeat_interleave_errors(kwargs, error, match) -> None:
    with Graph("g", input_types=[tt(DType.float32, 3, 2)]) as g, \
            pytest.raises(error, match=match):
        ops.repeat_interleave(g.inputs[0], **kwargs)


def test_repeat_interleave_tensor_repeats_need_out_dim() -> None:
    with Graph("g", input_types=[tt(DType.float32, 2, 2), tt(DType.int64, 2),
                                 tt(DType.int64, 3), tt(DType.float32, 2)]) as g:
        x, r, r3, f = g.inputs
        with pytest.raises(ValueError, match="repeat_interleave: a tensor of repeats needs "
                                             "out_dim"):
            ops.repeat_interleave(x, r, axis=0)
        with pytest.raises(ValueError, match=r"repeat_interleave: repeats \[3\] must have one"):
            ops.repeat_interleave(x, r3, axis=0, out_dim=5)
        with pytest.raises(ValueError, match="repeat_interleave: repeats must have an integer"):
            ops.repeat_interleave(x, f, axis=0, out_dim=5)
        assert ops.repeat_interleave(x, r, axis=1, out_dim="m").type == tt(DType.float32, 2, "m")


@pytest.mark.parametrize(("shape", "counts", "axis"), [
    ((2, 2), [2, 3], 0),                     # the documented example
    ((3, 4), [0, 1, 2, 0], 1),               # zero counts drop elements, as torch
    ((2, 3), [2], None),                     # one count for every (flattened) element
    ((4,), [1, 0, 0, 5], -1),
])
def test_repeat_interleave_by_tensor_matches_torch(shape, counts, axis) -> None:
    x = RNG.integers(-9, 9, shape).astype(np.float32)
    r = np.array(counts, np.int32)
    want = torch.repeat_interleave(torch.from_numpy(x), torch.from_numpy(r).long(),
                                   dim=axis).numpy()
    total = want.shape[0 if axis is None else axis]
    graph = Graph("ri", lambda v, c: ops.repeat_interleave(v, c, axis=axis, out_dim=total),
                  input_types=[tt(DType.float32, *shape), tt(DType.int32, len(counts))])
    if not _SESSION:
        _SESSION.append(InferenceSession())
    got = _SESSION[0].load(graph).execute(x, r)[0].to_numpy()
    np.testing.assert_array_equal(got, want)


def test_repeat_interleave_by_tensor_checks_the_counts_at_run_time() -> None:
    graph = Graph("ri", lambda v, c, _: ops.repeat_interleave(v, c, axis=0, out_dim="total"),
                  input_types=[tt(DType.int32, "n", 2), tt(DType.int64, "n"),
                               tt(DType.int8, "total")])
    # (the third input only binds the symbol "total": a dim must come from some input)
    if not _SESSION:
        _SESSION.append(InferenceSession())
    model = _SESSION[0].load(graph)
    x = np.arange(6, dtype=np.int32).reshape(3, 2)
    got = model.execute(x, np.array([1, 0, 2]), np.zeros(3, np.int8))[0].to_numpy()
    np.testing.assert_array_equal(got, np.repeat(x, [1, 0, 2], axis=0))
    for counts, total in (([1, 1, 2], 3), ([1, 1, 0], 3), ([4, -1, 0], 3), ([2**62, 2**62, 9], 3)):
        with pytest.raises(ValueError, match="mo.repeat_interleave: repeats must be non-negative "
                                             "and sum to"):
            model.execute(x, np.array(counts), np.zeros(total, np.int8))
    with pytest.raises(ValueError, match="mo.repeat_interleave"):  # nothing to repeat
        model.execute(np.zeros((0, 2), np.int32), np.zeros(0, np.int64), np.zeros(2, np.int8))
    model.execute(x, np.array([1, 0, 2]), np.zeros(3, np.int8))  # still usable


def test_as_interleaved_complex_pairs_the_last_dim() -> None:
    x = RNG.standard_normal((3, 8)).astype(np.float32)
    got = _run(("n", 8), ops.as_interleaved_complex, x)
    assert got.shape == (3, 4, 2)
    as_complex = x.view(np.complex64)  # numpy reads (real, imag) pairs the same way
    np.testing.assert_array_equal(got[..., 0], as_complex.real)
    np.testing.assert_array_equal(got[..., 1], as_complex.imag)
    torch_view = torch.view_as_real(torch.view_as_complex(torch.from_numpy(got))).numpy()
    np.testing.assert_array_equal(got, torch_view)


def test_as_interleaved_complex_types_and_errors() -> None:
    with Graph("g", input_types=[tt(DType.float32, "k", 6), tt(DType.float32, 2, 5),
                                 tt(DType.float32, "n"), tt(DType.float32)]) as g:
        a, odd, sym, scalar = g.inputs
        assert ops.as_interleaved_complex(a).type == tt(DType.float32, "k", 3, 2)
        doubled = ops.reshape(a, [Dim("k") * 6])
        assert ops.as_interleaved_complex(doubled).type == tt(DType.float32, Dim("k") * 3, 2)
        for bad in (odd, sym):
            with pytest.raises(ValueError, match="as_interleaved_complex: the last dimension"):
                ops.as_interleaved_complex(bad)
        with pytest.raises(ValueError, match="as_interleaved_complex: x must have rank >= 1"):
            ops.as_interleaved_complex(scalar)
