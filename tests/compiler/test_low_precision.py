"""float16/bfloat16 compute in f32 inside, bfloat16 keeps subnormals, f64 math at libm accuracy.

The reference for a 16-bit op is numpy's float32 result on the same (exactly widened) inputs,
rounded once to the 16-bit type. Our f32 accumulation order differs from numpy's pairwise
sums, so a result may land on the other side of a rounding boundary: 1 ulp of the 16-bit
type is allowed, where accumulating in 16 bits is off by hundreds (a float16 sum of 4096 ones
was 2048, a bfloat16 one 256).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from max import driver, engine
from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()
LOW = [DType.float16, DType.bfloat16]
RNG = np.random.default_rng(5)


@pytest.fixture(scope="module")
def session() -> engine.InferenceSession:
    return engine.InferenceSession()


def _np(dtype: DType) -> np.dtype:
    return np.dtype(dtype.to_numpy())


def _run(session: engine.InferenceSession, fn, types: list[TensorType],
         *xs: np.ndarray) -> list[np.ndarray]:
    model = session.load(Graph("lowp", fn, input_types=types))
    return [o.to_numpy() for o in model.execute(*map(driver.Tensor.from_numpy, xs))]


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Distance in units in the last place of the 16-bit type (same-sign finite values)."""
    bits = lambda a: a.view(np.uint16).astype(np.int64)  # noqa: E731
    g, w = bits(got), bits(want)
    g = np.where(g & 0x8000, -(g & 0x7FFF), g)
    w = np.where(w & 0x8000, -(w & 0x7FFF), w)
    return np.abs(g - w)


def check_rounded_once(got: np.ndarray, want_f32: np.ndarray, dtype: DType) -> None:
    """``got`` (16-bit) equals ``want_f32`` rounded to ``dtype`` within 1 ulp."""
    want = want_f32.astype(np.float32).astype(_np(dtype))
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape)
    assert np.array_equal(np.isnan(got.astype(np.float32)), np.isnan(want.astype(np.float32)))
    ulps = _ulps(got, want)
    assert ulps.max() <= 1, f"{ulps.max()} ulps off: got {got.ravel()[:4]}, want {want.ravel()[:4]}"


def _data(dtype: DType, *shape: int, lo: float = -3.0, hi: float = 3.0) -> np.ndarray:
    return RNG.uniform(lo, hi, shape).astype(np.float32).astype(_np(dtype))


@pytest.mark.parametrize("dtype", LOW, ids=lambda d: d.name)
def test_sum_and_mean_of_4096_ones(session, dtype: DType) -> None:
    """The finding: 2048 (float16) and 256 (bfloat16) as the sum, 0.5 and 0.0625 as the mean."""
    x = np.ones((2, 4096), _np(dtype))
    s, m, mm = _run(session, lambda v, w: (ops.sum(v), ops.mean(v), ops.matmul(v, w)),
                    [TensorType(dtype, [2, 4096], CPU), TensorType(dtype, [4096, 3], CPU)],
                    x, np.ones((4096, 3), _np(dtype)))
    assert s.astype(np.float32).tolist() == [[4096.0], [4096.0]]
    assert m.astype(np.float32).tolist() == [[1.0], [1.0]]
    assert (mm.astype(np.float32) == 4096.0).all()


@pytest.mark.parametrize("dtype", LOW, ids=lambda d: d.name)
def test_reductions_round_once(session, dtype: DType) -> None:
    x = _data(dtype, 8, 3000, lo=0.0, hi=2.0)
    x32 = x.astype(np.float32)
    got = _run(session, lambda v: (ops.sum(v, axis=1), ops.mean(v, axis=1), ops.sum(v, axis=0),
                                   ops.max(v, axis=1), ops.min(v, axis=0)),
               [TensorType(dtype, [8, 3000], CPU)], x)
    check_rounded_once(got[0], x32.sum(axis=1, keepdims=True), dtype)
    check_rounded_once(got[1], x32.mean(axis=1, keepdims=True), dtype)
    check_rounded_once(got[2], x32.sum(axis=0, keepdims=True), dtype)
    np.testing.assert_array_equal(got[3], x.max(axis=1, keepdims=True))  # exact
    np.testing.assert_array_equal(got[4], x.min(axis=0, keepdims=True))


@pytest.mark.parametrize("dtype", LOW, ids=lambda d: d.name)
def test_matmul_rounds_once(session, dtype: DType) -> None:
    a, b = _data(dtype, 2, 5, 700), _data(dtype, 700, 9)
    c = _data(dtype, 2, 700, 4)  # batched by a 3-D rhs: the generic, not linalg.matmul
    got = _run(session, lambda x, y, z: (ops.matmul(x, y), ops.matmul(x, z)),
               [TensorType(dtype, [2, 5, 700], CPU), TensorType(dtype, [700, 9], CPU),
                TensorType(dtype, [2, 700, 4], CPU)], a, b, c)
    a32, b32, c32 = (v.astype(np.float32) for v in (a, b, c))
    check_rounded_once(got[0], a32 @ b32, dtype)
    check_rounded_once(got[1], a32 @ c32, dtype)


@pytest.mark.parametrize("dtype", LOW, ids=lambda d: d.name)
def test_softmax_logsoftmax_layer_norm_in_f32(session, dtype: DType) -> None:
    x = _data(dtype, 4, 4096, lo=-4.0, hi=4.0)
    g, beta = _data(dtype, 4096, lo=0.5, hi=1.5), _data(dtype, 4096, lo=-1.0, hi=1.0)
    got = _run(session, lambda v, gg, bb: (ops.softmax(v), ops.logsoftmax(v),
                                           ops.layer_norm(v, gg, bb, 1e-5)),
               [TensorType(dtype, [4, 4096], CPU), TensorType(dtype, [4096], CPU),
                TensorType(dtype, [4096], CPU)], x, g, beta)
    t = torch.from_numpy(x.astype(np.float32))
    check_rounded_once(got[0], torch.softmax(t, -1).numpy(), dtype)
    check_rounded_once(got[1], torch.log_softmax(t, -1).numpy(), dtype)
    ln = torch.nn.functional.layer_norm(t, (4096,), torch.from_numpy(g.astype(np.float32)),
                                        torch.from_numpy(beta.astype(np.float32)), 1e-5)
    # layer_norm's result is a difference of larger values: compare with the f32 tolerance
    # scaled to the inputs, on top of the rounding.
    want = ln.numpy().astype(_np(dtype)).astype(np.float32)
    np.testing.assert_allclose(got[2].astype(np.float32), want, rtol=1e-2, atol=1e-2)
    assert _ulps(got[2], ln.numpy().astype(_np(dtype)))[np.abs(want) > 0.05].max() <= 1


# bfloat16 subnormals lie below 1.18e-38 (float32's range with 8 bits); float16 ones below 6.1e-5.
SUBNORMALS = {
    DType.bfloat16: np.array([1e-39, 5e-40, -1e-39, 9.2e-41, 3e-39, -2e-40], np.float32),
    DType.float16: np.array([3e-5, 6e-8, -1e-7, 1e-6, 4e-5, -2e-6], np.float32),
}


@pytest.mark.parametrize("dtype", LOW, ids=lambda d: d.name)
def test_subnormals_are_kept(session, dtype: DType) -> None:
    """The finding: bfloat16 results flushed subnormals to 0 (vcvtneps2bf16)."""
    x32 = SUBNORMALS[dtype]
    x = x32.astype(_np(dtype))
    half = np.full(x.shape, 0.5, _np(dtype))
    e_in = np.array([-90.0, -88.0, -100.0, -0.5, -87.5, -89.0], np.float32).astype(_np(dtype))
    t = TensorType(dtype, [6], CPU)
    got = _run(session, lambda v, h, e, f: (v + v, v * h, ops.relu(v), ops.cast(f, dtype),
                                            ops.exp(e), -v, ops.sum(ops.reshape(v, [2, 3]))),
               [t, t, t, TensorType(DType.float32, [6], CPU)], x, half, e_in, x32)
    xf = x.astype(np.float32)
    wants = [xf + xf, xf * 0.5, np.maximum(xf, 0), x32, np.exp(e_in.astype(np.float32)), -xf,
             xf.reshape(2, 3).sum(axis=1, keepdims=True)]
    for i, (g, w) in enumerate(zip(got, wants)):
        w16 = w.astype(_np(dtype))
        assert np.array_equal(g.view(np.uint16), w16.view(np.uint16)), (i, g, w16)
    assert (got[0] != 0).all()  # the point: nothing flushed


F64_UNARY = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "tanh": np.tanh, "sin": np.sin,
    "cos": np.cos, "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x),
    "erf": lambda x: torch.erf(torch.from_numpy(x)).numpy(),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "silu": lambda x: x / (1 + np.exp(-x)),
}


def test_f64_math_at_libm_accuracy(session) -> None:
    """Within 2 ulp of numpy (numpy's own SIMD exp/tanh differ from glibc's by 1): f64 was
    ``log(1 + x)`` for log1p, so log1p(1e-30) was 0."""
    x = np.concatenate([RNG.uniform(-5, 5, 400), 10 ** RNG.uniform(-300, 2, 200),
                        -(10 ** RNG.uniform(-300, -0.01, 100)),
                        [0.0, -0.0, 1e-30, -1e-30, 1e-310, np.inf, -np.inf, np.nan, -1.0]])
    names = sorted(F64_UNARY)
    outs = _run(session, lambda v: [getattr(ops, n)(v) for n in names],
                [TensorType(DType.float64, [len(x)], CPU)], x)
    with np.errstate(all="ignore"):
        for name, got in zip(names, outs):
            want = F64_UNARY[name](x)
            finite = np.isfinite(want) & (want != 0)
            ulps = np.abs(got[finite] - want[finite]) / np.spacing(np.abs(want[finite]))
            # glibc's tanh is documented at 2 ulp; numpy's SIMD one has its own errors.
            assert ulps.max() <= (3 if name == "tanh" else 2), (name, ulps.max())
            np.testing.assert_array_equal(got[~finite], want[~finite], err_msg=name)
    log1p = outs[names.index("log1p")]
    assert log1p[np.flatnonzero(x == 1e-30)[0]] == 1e-30
    assert log1p[-1] == -np.inf and log1p[-4] == np.inf


def test_f16_math_goes_through_f32(session) -> None:
    """16-bit transcendentals: the f32 function rounded once (numpy computes float16 so)."""
    x = np.concatenate([RNG.uniform(-4, 4, 200), [1e-4, -1e-4, 3e-6]]).astype(np.float16)
    names = ["exp", "log1p", "tanh", "sigmoid", "erf", "sqrt"]
    outs = _run(session, lambda v: [getattr(ops, n)(ops.abs(v) if n == "sqrt" else v)
                                    for n in names],
                [TensorType(DType.float16, [len(x)], CPU)], x)
    x32 = x.astype(np.float32)
    with np.errstate(all="ignore"):
        refs = [np.exp(x32), np.log1p(x32), np.tanh(x32), 1 / (1 + np.exp(-x32)),
                torch.erf(torch.from_numpy(x32)).numpy(), np.sqrt(np.abs(x32))]
        for name, got, want in zip(names, outs, refs):
            ok = np.isfinite(want)
            assert _ulps(got[ok], want[ok].astype(np.float16)).max() <= 1, name


def test_f64_gelu_has_no_cancellation(session) -> None:
    """``0.5 x (1 + erf(x / sqrt 2))`` cancels for negative x (37 ulp off at x = -5, and all
    digits lost further out); ``0.5 x erfc(-x / sqrt 2)`` is the same function without it.
    The reference evaluates erfc with Python's libm on the same rounded argument."""
    x = np.concatenate([np.linspace(-9.0, 6.0, 601), [-30.0, 0.0, 40.0]])
    (got,) = _run(session, lambda v: ops.gelu(v), [TensorType(DType.float64, [len(x)], CPU)], x)
    z = x * (-1 / math.sqrt(2.0))
    want = np.array([0.5 * a * math.erfc(b) for a, b in zip(x.tolist(), z.tolist())])
    np.testing.assert_allclose(got, want, rtol=4e-16, atol=0)
    assert got[-3] < 0 and got[-2] == 0 and got[-1] == 40.0  # tiny, not 0; erfc(-28) is 2


def test_bf16_rounding_builtin_matches_ml_dtypes(tmp_path) -> None:
    """The ``__truncsfbf2`` a model links where the x86 backend calls it (CPUs without
    AVX512-BF16; libgcc before GCC 13 lacks it): f32 -> bf16 as ml_dtypes rounds, to nearest
    even, subnormals kept, overflow to inf, NaN quiet."""
    import ctypes

    import ml_dtypes

    from max.compiler.pipelines.cpu import build_shared_object

    ir = ("define i16 @to_bf16(float %x) {\n"
          "  %b = call bfloat @__truncsfbf2(float %x)\n"
          "  %i = bitcast bfloat %b to i16\n"
          "  ret i16 %i\n"
          "}\n")  # the definition comes with the module: any module with bf16 values
    so = tmp_path / "bf16.so"
    build_shared_object(ir, so)
    fn = ctypes.CDLL(str(so)).to_bf16
    fn.argtypes, fn.restype = [ctypes.c_float], ctypes.c_uint16
    rng = np.random.default_rng(0)
    bits = np.concatenate([
        rng.integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32),
        np.array([0x3F808000, 0x3F818000, 0x3F80FFFF, 0x00008000, 0x00018000,  # ties, subnormals
                  0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0x00000000, 0x80000000], np.uint32)])
    values = bits.view(np.float32)
    got = np.array([fn(float(v)) for v in values], np.uint16)
    with np.errstate(invalid="ignore"):  # the NaNs among the random bits
        want = values.astype(ml_dtypes.bfloat16).view(np.uint16)
    finite = ~np.isnan(values)
    np.testing.assert_array_equal(got[finite], want[finite])
    # NaN: still NaN after the cast, and quiet (the top mantissa bit set).
    assert np.all((got[~finite] & 0x7F80) == 0x7F80) and np.all(got[~finite] & 0x0040)
