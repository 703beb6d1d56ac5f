"""``ops.cast`` between every pair of the 17 dtypes the CPU computes on, against numpy/ml_dtypes.

The dtypes: bool, int8..int64, uint8..uint64, float16, bfloat16, float32, float64 and the four
float8 types (computed in f32: compiler/lowering/float8.py). float4_e2m1fn is storage only:
moving it works, computing on it is a CompilationError (tested at the end). One graph per
source dtype casts to all the others.

The values exercise rounding (halfway cases, including the ones where rounding f64 -> f32 ->
16 bits twice would go wrong), overflow to inf, NaN, subnormals of every float type and integer
wrap-around. Float -> int casts are compared only where the truncated value fits the target:
numpy leaves the rest undefined too.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from max import driver, engine
from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()

DTYPES = [
    DType.bool, DType.int8, DType.int16, DType.int32, DType.int64,
    DType.uint8, DType.uint16, DType.uint32, DType.uint64,
    DType.float16, DType.bfloat16, DType.float32, DType.float64,
    DType.float8_e4m3fn, DType.float8_e4m3fnuz, DType.float8_e5m2, DType.float8_e5m2fnuz,
]

_FLOATS = [
    0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 0.1, 1 / 3, -7.9, 100.25, 127.9, -128.7, 255.5,
    300.7, 40000.4, 65504.0, 65519.0, 65520.0, 70000.0, 1e10, -1e10, 2.0**31 - 0.5, 2.0**40,
    3.3895e38, 3.4e38, 3.41e38, 1e39, 1e300, -1e300, np.inf, -np.inf, np.nan,
    # Subnormals: f64, f32, bfloat16 (f32's range, 8 bits), float16.
    1e-310, -5e-324, 1e-40, -3e-39, 1.4e-45, 9.2e-41, 6e-8, 3e-8, -1e-7, 2e-5,
    # Halfway and just past halfway between two bfloat16 / float16 values: the f64 bits past
    # f32's precision decide, which two round-to-nearest steps get wrong.
    1 + 2.0**-8, 1 + 2.0**-8 + 2.0**-30, 1 + 3 * 2.0**-8, 1 + 2.0**-11, 1 + 2.0**-11 + 2.0**-40,
    -(1 + 2.0**-8 + 2.0**-30), 2.0**-130 * (1 + 2.0**-8 + 2.0**-40),
]
_INTS_SIGNED = [0, 1, -1, 2, -2, 7, 127, 128, -128, -129, 255, 256, 32767, 32768, -32769,
                65504, 65519, 65520, 2**24 + 1, 2**31 - 1, -(2**31), 2**31 + 2**23 + 1,
                2**53 + 1, 2**62 + 3, 2**63 - 1, -(2**63)]
_INTS_UNSIGNED = [2**63 + 2**39 + 1, 2**64 - 1, 2**64 - 2**40]


_FLOAT_NP = {np.dtype(d.to_numpy()) for d in DTYPES if d.is_float()}  # ml_dtypes' kind is "V"


def _np(dtype: DType) -> np.dtype:
    return np.dtype(dtype.to_numpy())


def source_values(dtype: DType) -> np.ndarray:
    """Test inputs of ``dtype``: floats rounded to it, ints wrapped into it."""
    if dtype == DType.bool:
        return np.array([False, True, True, False])
    if dtype.is_float8():  # every code: NaNs, infinities, subnormals, both zeros
        return np.arange(256, dtype=np.uint8).view(_np(dtype))
    if dtype.is_float():
        with np.errstate(over="ignore"):
            return np.array(_FLOATS, np.float64).astype(_np(dtype))
    wrapped = np.concatenate([np.array(_INTS_SIGNED, np.int64).astype(_np(dtype)),
                              np.array(_INTS_UNSIGNED, np.uint64).astype(_np(dtype))])
    return wrapped


def defined(x: np.ndarray, src: DType, dst: DType) -> np.ndarray:
    """Where numpy's ``x.astype(dst)`` is defined: float -> int only for values that fit."""
    if not src.is_float() or dst == DType.bool or dst.is_float():
        return np.ones(x.shape, bool)
    info = np.iinfo(_np(dst))
    t = np.trunc(x.astype(np.float64))
    return np.isfinite(t) & (t >= info.min) & (t <= info.max)


def assert_same(got: np.ndarray, want: np.ndarray, mask: np.ndarray, what: str) -> None:
    """Bit-exact equality where defined (NaNs match NaNs, -0.0 must stay -0.0)."""
    assert got.dtype == want.dtype, what
    assert got.shape == want.shape, what
    g, w = got[mask], want[mask]
    if want.dtype in _FLOAT_NP:
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        both_nan = np.isnan(g64) & np.isnan(w64)
        same = (g64 == w64) & (np.signbit(g64) == np.signbit(w64))
        bad = ~(same | both_nan)
    else:
        bad = g != w
    if bad.any():
        src = np.flatnonzero(mask)[bad]
        raise AssertionError(f"{what}: inputs at {src.tolist()} gave {g[bad].tolist()}, "
                             f"numpy gives {w[bad].tolist()}")


@pytest.fixture(scope="module")
def session() -> engine.InferenceSession:
    return engine.InferenceSession()


@pytest.mark.parametrize("src", DTYPES, ids=lambda d: d.name)
def test_cast_to_every_dtype(session: engine.InferenceSession, src: DType) -> None:
    x = source_values(src)
    targets = [d for d in DTYPES if d != src]
    graph = Graph(f"cast_{src.name}", lambda v: [ops.cast(v, d) for d in targets],
                  input_types=[TensorType(src, [len(x)], CPU)])
    outs = session.load(graph).execute(driver.Tensor.from_numpy(x))
    with np.errstate(all="ignore"):
        for dst, out in zip(targets, outs):
            mask = defined(x, src, dst)
            want = x.astype(_np(dst))
            assert_same(out.to_numpy(), want, mask, f"{src.name} -> {dst.name}")


def test_f64_to_16_bits(session: engine.InferenceSession) -> None:
    """The finding: f64 -> bf16 failed to load (``__truncdfbf2``).

    float16 rounds once, like numpy (1 + 2^-11 + 2^-40 is past halfway: up); bfloat16 rounds
    through float32, like ml_dtypes and torch (1 + 2^-8 + 2^-30 first becomes the halfway
    1 + 2^-8, then 1.0).
    """
    x = np.array([1 + 2.0**-8 + 2.0**-30, 1 + 2.0**-11 + 2.0**-40, 1e300, 1e-40], np.float64)
    graph = Graph("f64_16", lambda v: (ops.cast(v, DType.bfloat16), ops.cast(v, DType.float16)),
                  input_types=[TensorType(DType.float64, [4], CPU)])
    bf, half = (o.to_numpy() for o in session.load(graph).execute(driver.Tensor.from_numpy(x)))
    assert bf[0] == ml_dtypes.bfloat16(1.0) == np.float32(x[0]).astype(ml_dtypes.bfloat16)
    assert half[1] == np.float16(1 + 2.0**-10)
    assert np.isinf(bf[2].astype(np.float32)) and np.isinf(half[2])
    assert bf[3].astype(np.float32) != 0  # a bfloat16 subnormal, not flushed
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(half, x.astype(np.float16))
        np.testing.assert_array_equal(bf, x.astype(ml_dtypes.bfloat16))


def test_float4_moves_but_does_not_compute(session: engine.InferenceSession) -> None:
    """float4 is storage only: transposes run, arithmetic and casts are a clean error (computing
    on float8 or float4 used to crash the compile worker with SIGSEGV)."""
    dtype = DType.float4_e2m1fn
    x = np.arange(6, dtype=np.float32).astype(_np(dtype)).reshape(2, 3)
    moved = session.load(Graph("f4_move", lambda v: ops.transpose(v, 0, 1),
                               input_types=[TensorType(dtype, [2, 3], CPU)]))
    got = moved.execute(driver.Tensor.from_numpy(x))[0].to_numpy()
    np.testing.assert_array_equal(got.astype(np.float32), x.T.astype(np.float32))
    for fn in (lambda v: v + v, lambda v: ops.cast(v, DType.float32)):
        graph = Graph("f4_compute", fn, input_types=[TensorType(dtype, [2, 3], CPU)])
        with pytest.raises(Exception, match="not supported on the CPU") as info:
            session.load(graph)
        assert "crashed" not in str(info.value)
