"""irfft (a composite: a matmul by a constant DFT matrix): numerics against numpy and PyTorch
in float64 over even/odd n, padding and truncation, axes, normalizations, symbolic batch dims,
real and interleaved complex inputs; the errors it raises."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch
from ops_helpers import result_type, shared_session, tt
from test_ops_numeric import check, run

from max.dtype import DType
from max.graph import Graph, ops
from max.graph.ops.irfft import Normalization

RNG = np.random.default_rng(11)


def _spectrum(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def _complex(x: np.ndarray) -> np.ndarray:
    """The complex128 array of an interleaved [..., 2] array."""
    x = x.astype(np.float64)
    return x[..., 0] + 1j * x[..., 1]


# m = 9 inputs: n = 16 is the default, below it truncates, above it pads (odd and even n).
@pytest.mark.parametrize("n", [None, 1, 2, 7, 8, 15, 16, 17, 30])
@pytest.mark.parametrize("complex_input", [False, True])
def test_irfft_matches_numpy_over_n(n: int | None, complex_input: bool) -> None:
    x = _spectrum(3, 9, 2) if complex_input else _spectrum(3, 9)
    (got,) = run(lambda v: ops.irfft(v, n, input_is_complex=complex_input),
                 [tt(DType.float32, *x.shape)], x)
    spectrum = _complex(x) if complex_input else x.astype(np.float64)
    check(got, np.fft.irfft(spectrum, n).astype(np.float32), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm", ["backward", "ortho", "forward", Normalization.ORTHO])
@pytest.mark.parametrize("axis", [0, 1, -2])
def test_irfft_axes_and_normalizations_match_torch(axis: int, norm: str) -> None:
    x = _spectrum(5, 4, 6, 2)
    (got,) = run(lambda v: ops.irfft(v, 10, axis, norm, input_is_complex=True),
                 [tt(DType.float32, *x.shape)], x)
    want = torch.fft.irfft(torch.view_as_complex(torch.from_numpy(x.astype(np.float64))),
                           n=10, dim=axis, norm=str(Normalization(norm).value))
    check(got, want.numpy().astype(np.float32), rtol=1e-5, atol=1e-6)


def test_irfft_real_input_on_a_middle_axis_with_symbolic_batch_dims() -> None:
    # Without input_is_complex the values are the real parts (imaginary parts zero), as MAX.
    model = shared_session().load(Graph(
        "irfft_sym", lambda v: ops.irfft(v, axis=1, normalization="forward"),
        input_types=[tt(DType.float32, "b", 7, "c")]))
    for b, c in ((1, 3), (4, 0), (2, 5)):
        x = _spectrum(b, 7, c)
        (got,) = (o.to_numpy() for o in model.execute(x))
        want = np.fft.irfft(x.astype(np.complex128), axis=1, norm="forward")
        check(got, want.astype(np.float32), rtol=1e-5, atol=1e-5)


def test_irfft_float64_is_exact_to_float64() -> None:
    x = _spectrum(4, 65, 2, dtype=np.float64)
    (got,) = run(lambda v: ops.irfft(v, 128, input_is_complex=True),
                 [tt(DType.float64, 4, 65, 2)], x)
    check(got, np.fft.irfft(_complex(x), 128), rtol=1e-12, atol=1e-14)


def test_irfft_large_n_in_float32() -> None:
    x = _spectrum(2, 1025, 2)
    (got,) = run(lambda v: ops.irfft(v, input_is_complex=True), [tt(DType.float32, 2, 1025, 2)],
                 x)
    want = np.fft.irfft(_complex(x))
    np.testing.assert_allclose(got, want, rtol=0, atol=3e-6 * np.abs(want).max())


@pytest.mark.parametrize("dtype", [DType.float16, DType.bfloat16])
def test_irfft_16_bit_floats_compute_in_float32(dtype: DType) -> None:
    np_dtype = np.float16 if dtype == DType.float16 else ml_dtypes.bfloat16
    x = _spectrum(3, 5, 2).astype(np_dtype)
    (got,) = run(lambda v: ops.irfft(v, 8, input_is_complex=True), [tt(dtype, 3, 5, 2)], x)
    want = np.fft.irfft(_complex(x.astype(np.float64)), 8)
    assert got.dtype == np_dtype
    # one rounding to the 16-bit dtype at the end
    eps = float(ml_dtypes.finfo(np_dtype).eps)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=0,
                               atol=2 * eps * np.abs(want).max())


def test_irfft_ignores_imaginary_parts_of_dc_and_nyquist() -> None:
    # numpy and PyTorch drop Im X_0 and Im X_{n/2}: the output is real either way.
    x = np.zeros((5, 2), np.float32)
    x[:, 0] = [1, 2, 3, 4, 5]
    x[0, 1], x[4, 1], x[2, 1] = 100.0, -50.0, 1.0
    (got,) = run(lambda v: ops.irfft(v, input_is_complex=True), [tt(DType.float32, 5, 2)], x)
    spectrum = _complex(x)
    check(got, np.fft.irfft(spectrum).astype(np.float32), rtol=1e-5, atol=1e-5)
    spectrum[0], spectrum[4] = spectrum[0].real, spectrum[4].real
    check(got, np.fft.irfft(spectrum).astype(np.float32), rtol=1e-5, atol=1e-5)


def test_irfft_of_an_empty_axis_pads_to_zeros() -> None:
    (got,) = run(lambda v: ops.irfft(v, 4), [tt(DType.float32, 3, 0)],
                 np.zeros((3, 0), np.float32))
    check(got, torch.fft.irfft(torch.zeros(3, 0, dtype=torch.complex64), n=4).numpy())


def test_irfft_result_types() -> None:
    assert result_type([tt(DType.float32, "b", 9, 2)],
                       lambda v: ops.irfft(v, input_is_complex=True)) == tt(DType.float32, "b", 16)
    assert result_type([tt(DType.float64, 4, "b", 3)],
                       lambda v: ops.irfft(v, 5, axis=0)) == tt(DType.float64, 5, "b", 3)


def test_normalization_enum() -> None:
    assert Normalization.BACKWARD == "backward"
    assert [m.value for m in Normalization] == ["backward", "ortho", "forward"]
    assert Normalization("ortho") is Normalization.ORTHO


def test_irfft_errors() -> None:
    f32 = tt(DType.float32, 3, 9)
    with pytest.raises(ValueError, match=r"irfft: axis=2 is out of range for a tensor of rank 2"):
        result_type([f32], lambda v: ops.irfft(v, axis=2))
    with pytest.raises(ValueError, match=r"irfft: axis=-3 is out of range for a tensor of rank "
                                         r"2 \(expected -2 <= axis < 2\)"):
        result_type([tt(DType.float32, 3, 9, 2)],
                    lambda v: ops.irfft(v, axis=-3, input_is_complex=True))
    with pytest.raises(ValueError, match=r"irfft: with input_is_complex the last dimension of "
                                         r"input_tensor must be 2 \(real, imag\), got shape "
                                         r"\[3, 9\]"):
        result_type([f32], lambda v: ops.irfft(v, input_is_complex=True))
    with pytest.raises(ValueError, match="irfft: n must be at least 1, got 0"):
        result_type([f32], lambda v: ops.irfft(v, 0))
    with pytest.raises(ValueError, match=r"irfft: n = 2 \* \(m - 1\) = 0 for m = 1 inputs"):
        result_type([tt(DType.float32, 3, 1)], lambda v: ops.irfft(v))
    with pytest.raises(TypeError, match=r"irfft: n must be an int, got 4.0"):
        result_type([f32], lambda v: ops.irfft(v, 4.0))
    with pytest.raises(ValueError, match=r"irfft: normalization must be 'backward', 'ortho' or "
                                         r"'forward', got 'none'"):
        result_type([f32], lambda v: ops.irfft(v, normalization="none"))
    with pytest.raises(ValueError, match="irfft: input_tensor must have a float dtype, got int32"):
        result_type([tt(DType.int32, 3, 9)], lambda v: ops.irfft(v))
    with pytest.raises(ValueError, match=r"irfft: the size of axis 1 of \[3, n\] must be static"):
        result_type([tt(DType.float32, 3, "n")], lambda v: ops.irfft(v, 8))
    with pytest.raises(ValueError, match="irfft: input_tensor must have rank >= 1"):
        result_type([tt(DType.float32, 2)], lambda v: ops.irfft(v, input_is_complex=True))
    with pytest.raises(TypeError, match="irfft: buffer_size_mb must be an int"):
        result_type([f32], lambda v: ops.irfft(v, buffer_size_mb="big"))
