"""cumsum, band_part, pad, range and hann_window: numerics against PyTorch/numpy on the CPU
(options, negative axes, symbolic dims), shape rules and the errors each builder raises."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ops_helpers import CPU, result_type, shared_session, tt
from hypothesis import given
from hypothesis import strategies as st
from test_ops_numeric import check, run

from max.dtype import DType
from max.graph import Dim, Graph, ops

RNG = np.random.default_rng(11)


def _f32(*shape: int) -> np.ndarray:
    return RNG.uniform(-3, 3, shape).astype(np.float32)


# -- cumsum ----------------------------------------------------------------------------------------


def _torch_cumsum(x: np.ndarray, axis: int, exclusive: bool, reverse: bool) -> np.ndarray:
    t = torch.from_numpy(x)
    if reverse:
        t = t.flip(axis)
    out = torch.cumsum(t, axis).to(t.dtype)
    if exclusive:  # shift by one along the axis, 0 first
        out = torch.cat([torch.zeros_like(out.narrow(axis, 0, 1)),
                         out.narrow(axis, 0, out.shape[axis] - 1)], axis)
    return (out.flip(axis) if reverse else out).numpy()


@pytest.mark.parametrize("axis", [0, 1, -1, -3])
@pytest.mark.parametrize(("exclusive", "reverse"), [(False, False), (True, False), (False, True),
                                                    (True, True)])
def test_cumsum_matches_torch(axis: int, exclusive: bool, reverse: bool) -> None:
    x = _f32(2, 3, 5)
    (got,) = run(lambda v: ops.cumsum(v, axis, exclusive, reverse),
                 [tt(DType.float32, "batch", 3, 5)], x)
    check(got, _torch_cumsum(x, axis, exclusive, reverse), atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_cumsum_all_dims_symbolic(axis: int) -> None:
    # The lowering views x as [outer, n, inner]: dynamic sizes on either side of the axis.
    types = [tt(DType.float64, "a", "b", "c")]
    for shape in ((2, 3, 4), (1, 5, 1), (3, 0, 2)):
        x = RNG.uniform(-1, 1, shape)
        (got,) = run(lambda v: ops.cumsum(v, axis, reverse=True), types, x)
        check(got, np.flip(np.cumsum(np.flip(x, axis), axis), axis), rtol=1e-12)


def test_cumsum_ints_wrap_in_their_dtype() -> None:
    x = RNG.integers(60, 127, (3, 8)).astype(np.int8)
    (got,) = run(lambda v: ops.cumsum(v, axis=1), [tt(DType.int8, 3, 8)], x)
    check(got, np.cumsum(x, axis=1, dtype=np.int8))
    u = RNG.integers(0, 9, (4,)).astype(np.uint32)
    (got,) = run(lambda v: ops.cumsum(v, reverse=True), [tt(DType.uint32, 4)], u)
    check(got, np.cumsum(u[::-1], dtype=np.uint32)[::-1])


def test_cumsum_float16_accumulates_in_float32() -> None:
    x = np.ones(4096, np.float16)  # a float16 running sum stops at 2048
    (got,) = run(lambda v: ops.cumsum(v), [tt(DType.float16, 4096)], x)
    check(got, np.cumsum(x.astype(np.float32)).astype(np.float16))


def test_cumsum_symbolic_axis_of_size_zero_and_one() -> None:
    for n in (0, 1, 6):
        x = _f32(n, 2)
        (got,) = run(lambda v: ops.cumsum(v, 0, exclusive=True), [tt(DType.float32, "n", 2)], x)
        check(got, _torch_cumsum(x, 0, True, False) if n else x)


# The last axis runs a vector of lanes at a time (16 of 32 bits, 8 of 64): lengths below,
# at and around the lane count, every option, and the dtypes of both widths.
@pytest.mark.parametrize("n", [1, 7, 16, 17, 33, 1000])
@pytest.mark.parametrize(("exclusive", "reverse"), [(False, False), (True, False), (False, True),
                                                    (True, True)])
def test_cumsum_last_axis_in_vectors(n: int, exclusive: bool, reverse: bool) -> None:
    x = _f32(3, n)
    (got,) = run(lambda v: ops.cumsum(v, -1, exclusive, reverse), [tt(DType.float32, 3, n)], x)
    check(got, _torch_cumsum(x.astype(np.float64), 1, exclusive, reverse).astype(np.float32),
          rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("dtype", "np_dtype"), [(DType.float64, np.float64),
                                                 (DType.int32, np.int32),
                                                 (DType.int64, np.int64),
                                                 (DType.uint8, np.uint8)])
@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum_last_axis_dtypes(dtype: DType, np_dtype, reverse: bool) -> None:
    x = RNG.integers(0, 200, (2, 3, 37)).astype(np_dtype)
    (got,) = run(lambda v: ops.cumsum(v, 2, reverse=reverse), [tt(dtype, "a", 3, "n")], x)
    want = np.flip(np.cumsum(np.flip(x, 2), 2, dtype=np_dtype), 2) if reverse else \
        np.cumsum(x, 2, dtype=np_dtype)
    check(got, want)


# Other axes: x as [outer, n, inner], each row of inner elements the previous output row plus
# an input row, in vectors: inner sizes around the lane count, every option, no plain loops.
@pytest.mark.parametrize("inner", [1, 7, 16, 17, 33, 1000])
@pytest.mark.parametrize(("exclusive", "reverse"), [(False, False), (True, False), (False, True),
                                                    (True, True)])
def test_cumsum_other_axes_in_vectors(inner: int, exclusive: bool, reverse: bool) -> None:
    x = _f32(2, 9, inner)
    graph = Graph("cumsum", lambda v: ops.cumsum(v, 1, exclusive, reverse),
                  input_types=[tt(DType.float32, 2, 9, inner)])
    model = shared_session().load(graph)
    assert model._record.fallbacks == ()
    got = model.execute(x)[0].to_numpy()
    check(got, _torch_cumsum(x.astype(np.float64), 1, exclusive, reverse).astype(np.float32),
          rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("dtype", "np_dtype"), [(DType.int64, np.int64), (DType.int8, np.int8),
                                                 (DType.float16, np.float16)])
def test_cumsum_first_axis_dtypes(dtype: DType, np_dtype) -> None:
    x = RNG.integers(0, 100, (40, 3, 21)).astype(np_dtype)
    (got,) = run(lambda v: ops.cumsum(v, 0), [tt(dtype, "n", 3, 21)], x)
    acc = np.float32 if np_dtype == np.float16 else np_dtype  # halves accumulate in f32
    check(got, np.cumsum(x, 0, dtype=acc).astype(np_dtype))


def test_cumsum_long_rows_and_vectors() -> None:
    # A sampler's cumsum over a vocabulary (one row of 49152) and a 1-D tensor.
    x = RNG.uniform(0, 1, (1, 49152)).astype(np.float32)
    (got,) = run(lambda v: ops.cumsum(v, 1), [tt(DType.float32, 1, 49152)], x)
    check(got, np.cumsum(x.astype(np.float64), 1).astype(np.float32), rtol=1e-5)
    y = RNG.uniform(-1, 1, 1001).astype(np.float32)
    (got,) = run(lambda v: ops.cumsum(v, 0, exclusive=True), [tt(DType.float32, 1001)], y)
    check(got, _torch_cumsum(y.astype(np.float64), 0, True, False).astype(np.float32),
          atol=1e-5)


def test_cumsum_errors() -> None:
    with pytest.raises(ValueError, match=r"cumsum: axis=2 is out of range for a tensor of rank 2"):
        result_type([tt(DType.float32, 2, 3)], lambda v: ops.cumsum(v, 2))
    with pytest.raises(ValueError, match="cumsum: expected a numeric dtype, got bool"):
        result_type([tt(DType.bool, 2)], ops.cumsum)
    with pytest.raises(ValueError, match="cumsum: x is a scalar"):
        result_type([tt(DType.float32)], ops.cumsum)
    with pytest.raises(TypeError, match="cumsum: exclusive must be a bool"):
        result_type([tt(DType.float32, 2)], lambda v: ops.cumsum(v, exclusive="yes"))
    with pytest.raises(TypeError, match="cumsum: axis must be an int"):
        result_type([tt(DType.float32, 2)], lambda v: ops.cumsum(v, 0.5))


# -- band_part -------------------------------------------------------------------------------------


def _band(x: np.ndarray, lower: int | None, upper: int | None, exclude: bool) -> np.ndarray:
    rows, cols = np.indices(x.shape[-2:])
    keep = np.ones(x.shape[-2:], bool)
    if lower is not None and lower >= 0:
        keep &= rows - cols <= lower
    if upper is not None and upper >= 0:
        keep &= cols - rows <= upper
    return np.where(keep != exclude, x, np.zeros((), x.dtype))


@pytest.mark.parametrize(("lower", "upper", "exclude"), [
    (None, None, False), (0, 0, False), (1, 0, False), (None, 1, True), (2, None, True),
    (-1, 0, False), (0, None, False), (None, None, True),
])
def test_band_part_matches_numpy(lower, upper, exclude) -> None:
    x = _f32(2, 4, 5)
    (got,) = run(lambda v: ops.band_part(v, lower, upper, exclude),
                 [tt(DType.float32, "batch", 4, 5)], x)
    check(got, _band(x, lower, upper, exclude))


def test_band_part_torch_tril_triu_and_dtypes() -> None:
    x = RNG.integers(-9, 9, (3, 6, 6)).astype(np.int32)
    (got,) = run(lambda v: ops.band_part(v, 2, 1), [tt(DType.int32, 3, "m", "m")], x)
    check(got, torch.from_numpy(x).triu(-2).tril(1).numpy())
    b = RNG.integers(0, 2, (4, 3)).astype(bool)
    (got,) = run(lambda v: ops.band_part(v, 0, None, exclude=True), [tt(DType.bool, 4, 3)], b)
    check(got, _band(b, 0, None, True))


@pytest.mark.parametrize("dtype", [DType.bfloat16, DType.float8_e4m3fn])
def test_low_precision_dtypes(dtype: DType) -> None:
    x = np.linspace(-2, 2, 12).reshape(3, 4).astype(dtype.to_numpy())
    wide = x.astype(np.float32)
    got = run(lambda v: (ops.band_part(v, 0, 1), ops.pad(v, [1, 0, 0, 1], value=1.0),
                         ops.cumsum(v, 0)), [tt(dtype, 3, 4)], x)
    check(got[0].astype(np.float32), _band(wide, 0, 1, False))
    check(got[1].astype(np.float32), np.pad(wide, [(1, 0), (0, 1)], constant_values=1.0))
    # summed in float32, rounded once
    check(got[2].astype(np.float32),
          np.cumsum(wide, 0).astype(dtype.to_numpy()).astype(np.float32))


def test_band_part_errors() -> None:
    with pytest.raises(ValueError, match=r"band_part: the input \[3\] must have rank >= 2"):
        result_type([tt(DType.float32, 3)], ops.band_part)
    with pytest.raises(ValueError, match="band_part: num_lower=3 is out of bounds"):
        result_type([tt(DType.float32, 3, 5)], lambda v: ops.band_part(v, 3, 0))
    with pytest.raises(ValueError, match="band_part: num_upper=5 is out of bounds"):
        result_type([tt(DType.float32, 3, 5)], lambda v: ops.band_part(v, 0, 5))
    with pytest.raises(ValueError, match="band_part: num_lower=-2 must be non-negative"):
        result_type([tt(DType.float32, 3, 5)], lambda v: ops.band_part(v, -2))
    with pytest.raises(TypeError, match="band_part: num_upper must be an int or None"):
        result_type([tt(DType.float32, 3, 5)], lambda v: ops.band_part(v, 0, 1.5))
    with pytest.raises(TypeError, match="band_part: exclude must be a bool"):
        result_type([tt(DType.float32, 3, 5)], lambda v: ops.band_part(v, exclude=2))
    # symbolic dims: any count is accepted
    assert result_type([tt(DType.float32, "m", "n")], lambda v: ops.band_part(v, 99)).rank == 2


# -- pad -------------------------------------------------------------------------------------------


def test_pad_matches_torch() -> None:
    x = _f32(2, 3)
    (got,) = run(lambda v: ops.pad(v, [1, 2, 0, 3], value=1.5), [tt(DType.float32, "b", 3)], x)
    want = torch.nn.functional.pad(torch.from_numpy(x), (0, 3, 1, 2), value=1.5).numpy()
    check(got, want)
    (got,) = run(lambda v: ops.pad(v, [0, 0, 2, 2]), [tt(DType.float32, "b", 3)], x)
    check(got, np.pad(x, [(0, 0), (2, 2)]))


def test_pad_dtypes_and_tensor_value() -> None:
    x = RNG.integers(-5, 5, (2, 2, 2)).astype(np.int32)
    (got,) = run(lambda v: ops.pad(v, [1, 0, 0, 1, 2, 0], value=-7), [tt(DType.int32, 2, 2, 2)], x)
    check(got, np.pad(x, [(1, 0), (0, 1), (2, 0)], constant_values=-7))
    b = np.array([True, False])
    (got,) = run(lambda v: ops.pad(v, [1, 1], value=True), [tt(DType.bool, 2)], b)
    check(got, np.array([True, True, False, True]))
    value = np.array(4.25, np.float64)
    y = RNG.uniform(size=(3,))
    (got,) = run(lambda v, c: ops.pad(v, [2, 1], value=c),
                 [tt(DType.float64, "n"), tt(DType.float64)], y, value)
    check(got, np.pad(y, (2, 1), constant_values=4.25))


def test_pad_of_an_empty_symbolic_dim() -> None:
    x = np.zeros((0, 2), np.float32)
    (got,) = run(lambda v: ops.pad(v, [1, 1, 0, 0], value=3.0), [tt(DType.float32, "n", 2)], x)
    check(got, np.full((2, 2), 3.0, np.float32))


@given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=4), data=st.data())
def test_pad_shape_rule_agrees_with_numpy(shape, data) -> None:
    pads = data.draw(st.lists(st.integers(0, 3), min_size=2 * len(shape),
                              max_size=2 * len(shape)))
    t = result_type([tt(DType.float32, *shape)], lambda v: ops.pad(v, pads))
    want = np.pad(np.zeros(shape), np.array(pads, np.int64).reshape(len(shape), 2))
    assert [int(d) for d in t.shape] == list(want.shape)


def test_pad_of_a_scalar_is_the_scalar() -> None:
    (got,) = run(lambda v: ops.pad(v, []), [tt(DType.float32)], np.array(2.5, np.float32))
    check(got, np.array(2.5, np.float32))


def test_pad_symbolic_dims_grow_algebraically() -> None:
    t = result_type([tt(DType.float32, "n", 2)], lambda v: ops.pad(v, [1, 2, 0, 0]))
    assert t.shape[0] == Dim("n") + 3


def test_pad_errors() -> None:
    f = [tt(DType.float32, 2, 3)]
    with pytest.raises(ValueError, match="pad: mode='reflect' is not supported"):
        result_type(f, lambda v: ops.pad(v, [1, 1, 1, 1], mode="reflect"))
    with pytest.raises(ValueError, match="pad: paddings has 2 values, a tensor of rank 2"):
        result_type(f, lambda v: ops.pad(v, [1, 1]))
    with pytest.raises(ValueError, match=r"pad: paddings\[1\] = -1 is negative"):
        result_type(f, lambda v: ops.pad(v, [0, -1, 0, 0]))
    with pytest.raises(TypeError, match=r"pad: paddings\[0\] must be an int"):
        result_type(f, lambda v: ops.pad(v, [0.5, 0, 0, 0]))
    with pytest.raises(ValueError, match="pad: unsafe cast: cannot promote a Python/numpy float"):
        result_type([tt(DType.int32, 2)], lambda v: ops.pad(v, [1, 1], value=0.5))
    with pytest.raises(ValueError, match="pad: value must be a scalar"):
        result_type([tt(DType.float32, 2), tt(DType.float32, 1)],
                    lambda v, c: ops.pad(v, [1, 1], value=c))
    with pytest.raises(ValueError, match="pad: value has dtype float64, the input float32"):
        result_type([tt(DType.float32, 2), tt(DType.float64)],
                    lambda v, c: ops.pad(v, [1, 1], value=c))


# -- range -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "stop", "step", "dtype"), [
    (0, 10, 3, DType.int64), (10, -3, -4, DType.int32), (5, 5, 1, DType.int16),
    (0.5, 3.0, 0.25, DType.float32), (1.0, -1.0, -0.3, DType.float64), (0, 1, 0.1, DType.float32),
    (-2, 7, 2, DType.float16), (3, 200, 50, DType.uint8), (-20, 20, 7, DType.int8),
])
def test_range_of_python_numbers_matches_torch(start, stop, step, dtype) -> None:
    (got,) = run(lambda: ops.range(start, stop, step, dtype=dtype, device=CPU), [])
    want = torch.arange(start, stop, step, dtype=torch.float64).numpy().astype(dtype.to_numpy())
    check(got, want, rtol=1e-6 if dtype != DType.float16 else 1e-3)


def test_range_of_symbolic_dims() -> None:
    types = [tt(DType.float32, "n")]
    for n in (7, 1, 2):
        x = np.zeros(n, np.float32)
        got = run(lambda v: (ops.range(0, v.shape[0], 2, dtype=DType.float32, device=CPU),
                             ops.range(1, v.shape[0], 1, dtype=DType.int64, device=CPU),
                             ops.range(v.shape[0], -1, -3, dtype=DType.int32, device=CPU)),
                  types, x)
        check(got[0], np.arange(0, n, 2, dtype=np.float32))
        check(got[1], np.arange(1, n, dtype=np.int64))
        check(got[2], np.arange(n, -1, -3, dtype=np.int32))
    (got,) = run(lambda v: ops.range(0.5, v.shape[0], 1, out_dim=v.shape[0],
                                     dtype=DType.float64, device=CPU), types,
                 np.zeros(4, np.float32))
    check(got, np.arange(0.5, 4, 1.0))
    t = result_type(types, lambda v: ops.range(1, v.shape[0], 3, dtype=DType.int64, device=CPU))
    assert t.shape[0] == (Dim("n") + 1) // 3


def test_range_of_tensors_checks_out_dim_at_run_time() -> None:
    types = [tt(DType.int32), tt(DType.int32), tt(DType.int32)]
    scalars = [np.array(v, np.int32) for v in (2, 11, 3)]
    (got,) = run(lambda a, b, c: ops.range(a, b, c, out_dim=3, dtype=DType.int32, device=CPU),
                 types, *scalars)
    check(got, np.arange(2, 11, 3, dtype=np.int32))
    with pytest.raises(ValueError, match=r"mo.range: step is 0, or ceil\(\(stop - start\) / "
                                         r"step\) is not the declared length \(out_dim\) 4"):
        run(lambda a, b, c: ops.range(a, b, c, out_dim=4, dtype=DType.int32, device=CPU),
            types, *scalars)
    with pytest.raises(ValueError, match="mo.range: step is 0"):
        run(lambda a, b, c: ops.range(a, b, c, out_dim=3, dtype=DType.int32, device=CPU),
            types, scalars[0], scalars[1], np.array(0, np.int32))
    # A symbolic out_dim bound by another input; a float step from a tensor.
    f = [tt(DType.float32, "n"), tt(DType.float32)]
    (got,) = run(lambda v, s: ops.range(0.0, 2.0, s, out_dim=v.shape[0], dtype=DType.float32,
                                        device=CPU), f, np.zeros(8, np.float32),
                 np.array(0.25, np.float32))
    check(got, np.arange(0, 2, 0.25, dtype=np.float32))


@given(start=st.integers(-50, 50), stop=st.integers(-50, 50), step=st.integers(-9, 9))
def test_range_length_agrees_with_python(start: int, stop: int, step: int) -> None:
    if step == 0 or (stop - start) * step < 0:
        with pytest.raises(ValueError, match="range: step must be non-zero|range: stop - start"):
            result_type([], lambda: ops.range(start, stop, step, dtype=DType.int64, device=CPU))
        return
    t = result_type([], lambda: ops.range(start, stop, step, dtype=DType.int64, device=CPU))
    assert list(t.shape) == [Dim(len(range(start, stop, step)))]


def test_range_errors() -> None:
    def build(*args, **kwargs):
        kwargs.setdefault("dtype", DType.float32)
        kwargs.setdefault("device", CPU)
        return result_type([tt(DType.float32), tt(DType.float32, "n")],
                           lambda t, v: ops.range(*[{"T": t}.get(a, a) for a in args], **kwargs))

    with pytest.raises(ValueError, match="range: out_dim is required when start, stop or step "
                                         "is a tensor"):
        build(0, "T", 1)
    with pytest.raises(ValueError, match="range: out_dim is required for symbolic bounds"):
        result_type([tt(DType.float32, "n")],
                    lambda v: ops.range(0, v.shape[0], 0.5, dtype=DType.float32, device=CPU))
    with pytest.raises(ValueError, match="range: out_dim is required for symbolic bounds"):
        result_type([tt(DType.float32, "n")],
                    lambda v: ops.range(0.5, v.shape[0], 1, dtype=DType.float32, device=CPU))
    t = result_type([tt(DType.float32, "n")], lambda v: ops.range(
        0.5, v.shape[0], 1, out_dim=v.shape[0], dtype=DType.float32, device=CPU))
    assert list(t.shape) == [Dim("n")]
    with pytest.raises(ValueError, match="range: step must be non-zero"):
        build(0, 5, 0)
    with pytest.raises(ValueError, match=r"range: stop - start \(5.0 - 0.0\) must be zero or"):
        build(0, 5, -1)
    with pytest.raises(ValueError, match="range: out_dim 4 does not match the length 5"):
        build(0, 5, 1, out_dim=4)
    with pytest.raises(TypeError, match="range: dtype must be a max.dtype.DType"):
        build(0, 5, 1, dtype="float32")
    with pytest.raises(ValueError, match="range: dtype must be numeric, got bool"):
        build(0, 5, 1, dtype=DType.bool)
    # A new symbol names a length only the data determines (tests/graph/ops/
    # test_ops_data_sizes.py); an expression over one is refused.
    assert list(build(0, "T", 1, out_dim="m").shape) == [Dim("m")]
    with pytest.raises(ValueError, match="range: out_dim uses the symbol 'm', which no graph "
                                         "input has"):
        build(0, "T", 1, out_dim=Dim("m") + 1)
    with pytest.raises(ValueError, match="range: stop has dtype float32, but all arguments must "
                                         "have the same element type"):
        build(0, "T", 1, out_dim=3, dtype=DType.float64)
    with pytest.raises(ValueError, match=r"range: step=0.5 is a float, but dtype is int32"):
        build(0, 5, 0.5, dtype=DType.int32)
    with pytest.raises(ValueError, match="range: start: unsafe cast"):
        build(300, 301, 1, dtype=DType.int8)
    with pytest.raises(TypeError, match="range: start must be a number, a Dim or a scalar"):
        build("x", 5, 1)


# -- hann_window -----------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 2, 5, 16])
@pytest.mark.parametrize("periodic", [True, False])
def test_hann_window_matches_torch(length: int, periodic: bool) -> None:
    for dtype, tdtype in ((DType.float32, torch.float32), (DType.float64, torch.float64)):
        (got,) = run(lambda: ops.hann_window(length, CPU, periodic, dtype), [])
        want = torch.hann_window(length, periodic=periodic, dtype=tdtype).numpy()
        check(got, want, atol=1e-7 if dtype == DType.float32 else 1e-15)


def test_hann_window_periodic_is_the_symmetric_one_trimmed() -> None:
    got = run(lambda: (ops.hann_window(8, CPU), ops.hann_window(9, CPU, periodic=False)), [])
    check(got[0], got[1][:-1])
    t = result_type([], lambda: ops.hann_window(4, CPU, dtype=DType.bfloat16))
    assert t.dtype == DType.bfloat16 and list(t.shape) == [Dim(4)]


def test_hann_window_errors() -> None:
    with pytest.raises(ValueError, match="hann_window: window_length=-1 is negative"):
        result_type([], lambda: ops.hann_window(-1, CPU))
    with pytest.raises(TypeError, match="hann_window: window_length must be an int"):
        result_type([], lambda: ops.hann_window(4.0, CPU))
    with pytest.raises(ValueError, match="hann_window: dtype must be a floating-point DType"):
        result_type([], lambda: ops.hann_window(4, CPU, dtype=DType.int32))
