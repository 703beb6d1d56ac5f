"""top_k and argsort: compiled and run against torch.topk / torch.sort(stable=True), shape
rules with hypothesis, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ops_helpers import shared_session, tt
from hypothesis import given, settings
from hypothesis import strategies as st

from max.dtype import DType
from max.graph import Graph, ops

RNG = np.random.default_rng(11)


def _run(types, fn, *inputs):
    model = shared_session().load(Graph("sort", fn, input_types=list(types)))
    return [o.to_numpy() for o in model.execute(*inputs)], model


def _stable(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    t = torch.from_numpy(x.astype(np.int16) if x.dtype == np.bool_ else x)
    return torch.sort(t, dim=axis, descending=descending, stable=True).indices.numpy()


def _ties(*shape: int) -> np.ndarray:
    return RNG.integers(-3, 3, shape).astype(np.float32)


def _with_nans(*shape: int) -> np.ndarray:
    x = RNG.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[::4] = np.nan
    return x


def _wide_stable(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """torch's stable order of x, its unsigned types widened (torch sorts few of them)."""
    if x.dtype in (np.uint16, np.uint32):
        x = x.astype(np.int64)
    return _stable(x, axis, descending)


def _specials(n: int, dtype) -> np.ndarray:
    """n floats with many ties, both zeros, infinities and NaNs of both signs."""
    x = RNG.integers(-6, 6, n).astype(np.float32) * np.float32(0.5)
    x[::7] = -0.0
    x[3::11] = np.inf
    x[5::13] = -np.inf
    x[2::17] = np.nan
    x[4::19] = -np.nan  # a NaN with its sign bit set sorts with the others
    return x.astype(dtype)


TOP_K_CASES = [
    (RNG.standard_normal((2, 7)).astype(np.float32), 3, -1),
    (_ties(3, 9), 4, 1),                       # ties: lower index first
    (_ties(5, 3, 4), 2, 0),                    # a leading axis (moved last and back)
    (_ties(2, 6, 3), 6, -2),                   # negative axis, k = n
    (_ties(2, 6), 0, -1),                      # k = 0
    (_with_nans(3, 8), 5, 1),                  # NaN above every number, as torch.topk
    (RNG.integers(-5, 5, (4, 10)).astype(np.int32), 3, 1),
    (RNG.integers(0, 4, (10, 3)).astype(np.uint8), 2, 0),
    (RNG.standard_normal((2, 33)).astype(np.float16), 7, -1),
    (RNG.standard_normal((3, 5)), 5, 1),       # float64
    # k <= 64 keeps a sorted buffer of k; larger ones sort the whole line: both, with ties
    (_ties(2, 150), 100, -1),
    (np.tile(np.arange(300, dtype=np.float32), (2, 1)), 64, 1),        # each one inserted first
    (np.tile(np.arange(300, 0, -1, dtype=np.float32), (2, 1)), 64, 1),  # none inserted past k
]


@pytest.mark.parametrize(("x", "k", "axis"), TOP_K_CASES,
                         ids=[f"{c[0].dtype}-{c[0].shape}-k{c[1]}-ax{c[2]}" for c in TOP_K_CASES])
def test_top_k_matches_torch(x: np.ndarray, k: int, axis: int) -> None:
    (values, indices), _ = _run([tt(DType.from_numpy(x.dtype), *x.shape)],
                                lambda v: list(ops.top_k(v, k, axis)), x)
    t = torch.from_numpy(x)
    want_values = torch.topk(t, k, dim=axis, largest=True, sorted=True).values.numpy()
    want_indices = np.take(_stable(x, axis, True), np.arange(k), axis=axis)
    assert values.dtype == x.dtype and indices.dtype == np.int64
    np.testing.assert_array_equal(values, want_values)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_array_equal(np.take_along_axis(x, indices, axis), values)


ARGSORT_CASES = [
    _ties(17),
    _ties(9, 3),                               # sorts the first dimension of each column
    _with_nans(12),
    RNG.integers(-4, 4, (11, 2)).astype(np.int64),
    RNG.integers(0, 255, 40).astype(np.uint8),
    RNG.integers(0, 2, 9).astype(np.bool_),
    np.array([0.0, -0.0, np.inf, -np.inf, 1.0, np.nan, -1.0], np.float32),
]


@pytest.mark.parametrize("ascending", [True, False])
@pytest.mark.parametrize("x", ARGSORT_CASES, ids=lambda a: f"{a.dtype}-{a.shape}")
def test_argsort_matches_stable_torch_sort(x: np.ndarray, ascending: bool) -> None:
    (got,), _ = _run([tt(DType.from_numpy(x.dtype), *x.shape)],
                     lambda v: ops.argsort(v, ascending=ascending), x)
    assert got.dtype == np.int64 and got.shape == x.shape
    np.testing.assert_array_equal(got, _stable(x, 0, not ascending))


def test_argsort_of_a_long_axis_matches_numpy() -> None:
    x = RNG.integers(0, 1000, 100_003).astype(np.int32)  # many ties, not a power of two
    (got,), _ = _run([tt(DType.int32, "n")], lambda v: ops.argsort(v), x)
    np.testing.assert_array_equal(got, np.argsort(x, kind="stable"))
    y = RNG.standard_normal(70_001).astype(np.float32)
    (got,), _ = _run([tt(DType.float32, "n")], lambda v: ops.argsort(v, ascending=False), y)
    np.testing.assert_array_equal(got, np.argsort(-y, kind="stable"))


@pytest.mark.parametrize("n", [1, 2, 100, 255, 256, 1000])
def test_argsort_of_a_symbolic_axis_either_side_of_the_radix_length(n: int) -> None:
    # A symbolic line length picks the merge or the radix sort at run time (RADIX_MIN_N).
    x = _specials(3 * n, np.float32).reshape(n, 3)
    for ascending in (True, False):
        (got,), _ = _run([tt(DType.float32, "n", 3)],
                         lambda v: ops.argsort(v, ascending=ascending), x)
        np.testing.assert_array_equal(got, _stable(x, 0, not ascending))


# Static lines of at least radix_sort.RADIX_MIN_N elements of keys up to 32 bits are radix
# sorted (one digit a byte of the mapped key); a shorter line and f64 keep the merge sort.
RADIX_CASES = [
    ("f32-specials", _specials(1000, np.float32)),
    ("f32-columns", RNG.standard_normal((300, 3)).astype(np.float32)),  # axis 0 of each column
    ("f16-specials", _specials(513, np.float16)),
    ("i8", RNG.integers(-128, 128, 700).astype(np.int8)),
    ("u8", RNG.integers(0, 256, 300).astype(np.uint8)),
    ("i16", RNG.integers(-32768, 32768, 2000).astype(np.int16)),
    ("u16", RNG.integers(0, 1 << 16, 2000).astype(np.uint16)),
    ("i32", RNG.integers(-(1 << 31), 1 << 31, 5000, dtype=np.int64).astype(np.int32)),
    ("i32-ties", RNG.integers(-3, 3, (257, 2)).astype(np.int32)),
    ("u32", RNG.integers(0, 1 << 32, 3000, dtype=np.int64).astype(np.uint32)),
    ("bool", RNG.integers(0, 2, 400).astype(np.bool_)),
    ("f32-255-merge", _specials(255, np.float32)),
    ("f64-merge", RNG.integers(-9, 9, 500).astype(np.float64)),
]


@pytest.mark.parametrize("ascending", [True, False])
@pytest.mark.parametrize(("name", "x"), RADIX_CASES, ids=[c[0] for c in RADIX_CASES])
def test_argsort_of_long_static_lines_matches_stable_torch_sort(name: str, x: np.ndarray,
                                                                 ascending: bool) -> None:
    (got,), _ = _run([tt(DType.from_numpy(x.dtype), *x.shape)],
                     lambda v: ops.argsort(v, ascending=ascending), x)
    np.testing.assert_array_equal(got, _wide_stable(x, 0, not ascending))


SELECT_CASES = [
    ("specials", _specials(3 * 700, np.float32).reshape(3, 700), 100),
    ("all-equal", np.ones((2, 1000), np.float32), 100),          # one bucket holds them all
    ("ascending", np.tile(np.arange(3000, dtype=np.float32), (2, 1)), 65),
    ("descending", np.tile(np.arange(3000, 0, -1, dtype=np.float32), (2, 1)), 300),
    ("i32-ties", RNG.integers(-3, 3, (2, 2000)).astype(np.int32), 999),
    ("u8", RNG.integers(0, 256, (2, 5000)).astype(np.uint8), 70),
    ("f16", RNG.standard_normal((2, 4099)).astype(np.float16), 257),
    ("k=n-1", RNG.standard_normal((2, 300)).astype(np.float32), 299),
]


@pytest.mark.parametrize(("name", "x", "k"), SELECT_CASES, ids=[c[0] for c in SELECT_CASES])
@pytest.mark.parametrize("symbolic", [False, True])
def test_top_k_of_more_than_64_selects_before_sorting(name: str, x: np.ndarray, k: int,
                                                        symbolic: bool) -> None:
    # A static prefix over 64: the top digit's histogram picks the candidates (the bucket
    # of the k-th and those before), only they are radix sorted.
    dims = (x.shape[0], "n") if symbolic else x.shape
    (values, indices), _ = _run([tt(DType.from_numpy(x.dtype), *dims)],
                                lambda v: list(ops.top_k(v, k, -1)), x)
    want = _wide_stable(x, 1, True)[:, :k]
    np.testing.assert_array_equal(indices, want)
    np.testing.assert_array_equal(values, np.take_along_axis(x, want, 1))


@pytest.mark.parametrize("k", [10, 100, 1000])
@pytest.mark.parametrize("axis", [1, 0])
def test_many_lines_go_over_threads(k: int, axis: int) -> None:
    # 40 lines of 1000 (over THREADED_ELEMENTS): the lines' first outer dim is a forall,
    # each part of the result its own; along axis 0 that dim is the result's second.
    x = _specials(40 * 1000, np.float32).reshape(40, 1000)
    x = x if axis == 1 else np.ascontiguousarray(x.T)
    (values, indices), model = _run([tt(DType.float32, *x.shape)],
                                    lambda v: list(ops.top_k(v, k, axis)), x)
    want = np.take(_stable(x, axis, True), np.arange(k), axis=axis)
    np.testing.assert_array_equal(indices, want)
    np.testing.assert_array_equal(values, np.take_along_axis(x, want, axis))


def test_top_k_of_whole_long_rows_is_their_stable_order() -> None:
    x = np.concatenate([RNG.standard_normal((2, 4096)).astype(np.float32),
                        _specials(4096, np.float32)[None]])
    (values, indices), _ = _run([tt(DType.float32, 3, 4096)],
                                lambda v: list(ops.top_k(v, 4096, -1)), x)
    np.testing.assert_array_equal(indices, _stable(x, 1, True))
    np.testing.assert_array_equal(values, np.take_along_axis(x, indices, 1))


@pytest.mark.parametrize("dtype", [DType.bfloat16, DType.float8_e4m3fn, DType.float8_e5m2])
def test_argsort_of_a_long_low_precision_line(dtype: DType) -> None:
    wide = _specials(520, np.float32)
    if dtype is DType.float8_e4m3fn:  # no infinities in the format
        wide[~np.isfinite(wide) & ~np.isnan(wide)] = 448.0
    x = wide.astype(dtype.to_numpy())
    assert np.array_equal(x.astype(np.float32), wide, equal_nan=True)  # exact in each format
    for ascending in (True, False):
        (got,), _ = _run([tt(dtype, 520)], lambda v: ops.argsort(v, ascending=ascending), x)
        np.testing.assert_array_equal(got, _stable(wide, 0, not ascending))


def test_top_k_of_more_than_64_of_a_long_line() -> None:
    x = _specials(3 * 700, np.float32).reshape(3, 700)
    (values, indices), _ = _run([tt(DType.float32, 3, 700)],
                                lambda v: list(ops.top_k(v, 100, -1)), x)
    want = _stable(x, 1, True)[:, :100]
    np.testing.assert_array_equal(indices, want)
    np.testing.assert_array_equal(values, np.take_along_axis(x, want, 1))


def test_top_k_on_a_symbolic_axis_checks_k_at_run_time() -> None:
    (values, indices), model = _run([tt(DType.float32, "b", "n")],
                                    lambda v: list(ops.top_k(v, 3)), _ties(2, 5))
    x = _ties(4, 6)
    values, indices = (o.to_numpy() for o in model.execute(x))
    np.testing.assert_array_equal(indices, _stable(x, 1, True)[:, :3])
    with pytest.raises(ValueError, match="mo.argsort: the result keeps 3 positions"):
        model.execute(_ties(2, 2))
    model.execute(x)  # still usable


def test_empty_shapes() -> None:
    (v, i), _ = _run([tt(DType.float32, 0, 5)], lambda x: list(ops.top_k(x, 2)),
                     np.zeros((0, 5), np.float32))
    assert v.shape == i.shape == (0, 2)
    (s,), _ = _run([tt(DType.float32, "n")], lambda x: ops.argsort(x),
                   np.zeros(0, np.float32))
    assert s.shape == (0,)


def test_result_types() -> None:
    with Graph("g", input_types=[tt(DType.bfloat16, "batch", 10, 4)]) as g:
        values, indices = ops.top_k(g.inputs[0], 3, axis=1)
        assert values.type == tt(DType.bfloat16, "batch", 3, 4)
        assert indices.type == tt(DType.int64, "batch", 3, 4)
        assert ops.argsort(g.inputs[0]).type == tt(DType.int64, "batch", 10, 4)


@settings(deadline=None, max_examples=40, derandomize=True)
@given(shape=st.lists(st.sampled_from([1, 3, 4, "n"]), min_size=1, max_size=4),
       data=st.data())
def test_top_k_shape_rule(shape, data) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    k = data.draw(st.integers(0, n if isinstance(n, int) else 5))
    with Graph("g", input_types=[tt(DType.float32, *shape)]) as g:
        values, indices = ops.top_k(g.inputs[0], k, axis)
    want = list(shape)
    want[axis] = k
    assert values.type == tt(DType.float32, *want)
    assert indices.type == tt(DType.int64, *want)


@pytest.mark.parametrize(("args", "error", "match"), [
    ((4, -1), ValueError, r"top_k: k=4 must be in \[0, 3\]"),
    ((-1, -1), ValueError, r"top_k: k=-1"),
    ((1, 2), ValueError, "top_k: axis=2 is out of range"),
    ((1.0, -1), TypeError, "top_k: k must be an int"),
    ((True, -1), TypeError, "top_k: k must be an int"),
])
def test_top_k_errors(args, error, match) -> None:
    with Graph("g", input_types=[tt(DType.float32, 2, 3)]) as g, \
            pytest.raises(error, match=match):
        ops.top_k(g.inputs[0], *args)


def test_sort_errors_on_scalars_and_bad_arguments() -> None:
    with Graph("g", input_types=[tt(DType.float32), tt(DType.float32, 3)]) as g:
        s, v = g.inputs
        with pytest.raises(ValueError, match="top_k: input must have rank >= 1"):
            ops.top_k(s, 1)
        with pytest.raises(ValueError, match="argsort: x must have rank >= 1"):
            ops.argsort(s)
        with pytest.raises(TypeError, match="argsort: ascending must be a bool"):
            ops.argsort(v, ascending=1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="top_k: input must be a graph value"):
            ops.top_k(np.ones(3), 1)


@pytest.mark.parametrize("dtype", [DType.bfloat16, DType.float8_e4m3fn, DType.float8_e5m2])
def test_top_k_in_low_precision_orders_the_exact_values(dtype: DType) -> None:
    wide = np.array([[0.5, -2.0, 0.5, 3.0, -0.25, 1.0, 3.0, np.nan]], np.float32)
    x = wide.astype(dtype.to_numpy())  # every value exact in each format
    (values, indices), _ = _run([tt(dtype, 1, 8)], lambda v: list(ops.top_k(v, 5)), x)
    want = _stable(wide, 1, True)[:, :5]
    np.testing.assert_array_equal(indices, want)
    np.testing.assert_array_equal(values.astype(np.float32), np.take_along_axis(wide, want, 1))


def test_top_k_of_a_constant_is_folded_to_the_same_result() -> None:
    x = _ties(3, 7)

    def fn() -> list:
        values, indices = ops.top_k(ops.constant(x, DType.float32), 4, axis=-1)
        return [values, indices, ops.argsort(ops.constant(x[0], DType.float32), False)]

    values, indices, order = _run([], fn)[0]
    np.testing.assert_array_equal(indices, _stable(x, 1, True)[:, :4])
    np.testing.assert_array_equal(values, np.take_along_axis(x, indices, 1))
    np.testing.assert_array_equal(order, _stable(x[0], 0, True))
