"""DLPack both ways with numpy and PyTorch, zero copy, for every dtype both sides know."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from driver_samples import NUMPY_NATIVE, sample

from max.driver import DLPackArray, Tensor
from max.dtype import DType

TORCH_DTYPES = [d for d in DType if d is not DType.float4_e2m1fn]


def as_float64(t: object) -> np.ndarray:
    """A torch tensor or numpy array as float64 numpy values, for comparison."""
    if isinstance(t, torch.Tensor):
        return t.to(torch.float64).numpy()
    return np.asarray(t).astype(np.float64)


def test_protocol() -> None:
    t = Tensor(DType.float32, (2,))
    assert isinstance(t, DLPackArray)
    assert isinstance(np.zeros(2), DLPackArray)
    assert not isinstance([1.0], DLPackArray)
    assert t.__dlpack_device__() == (1, 0)


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(), (0,), (2, 3), (3, 0, 2)])
def test_to_torch_zero_copy(dtype: DType, shape: tuple[int, ...]) -> None:
    a = sample(dtype, shape)
    t = Tensor.from_numpy(a)
    tt = torch.from_dlpack(t)
    assert tt.dtype == dtype.to_torch()
    assert tuple(tt.shape) == shape
    np.testing.assert_array_equal(as_float64(tt), as_float64(a))
    if a.size:
        assert tt.data_ptr() == a.ctypes.data
        index = (0,) * len(shape)
        tt[index] = True if dtype is DType.bool else 4
        assert as_float64(t.to_numpy()[index]) == as_float64(tt[index])


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(), (0,), (2, 3)])
def test_from_torch_zero_copy(dtype: DType, shape: tuple[int, ...]) -> None:
    tt = torch.from_numpy(sample(DType.int64, shape)).to(dtype.to_torch())
    t = Tensor.from_dlpack(tt)
    assert t.dtype is dtype
    assert t.shape == shape
    np.testing.assert_array_equal(as_float64(t.to_numpy()), as_float64(tt))
    if tt.numel():
        assert t._data_ptr() == tt.data_ptr()
        index = (0,) * len(shape)
        t[index] = True if dtype is DType.bool else 3
        assert as_float64(tt[index]) == as_float64(t.to_numpy()[index])


def test_bfloat16_bits_survive_both_ways() -> None:
    tt = torch.tensor([1.0078125, -3.5, 65280.0, float("inf")], dtype=torch.bfloat16)
    t = Tensor.from_dlpack(tt)
    assert t.dtype is DType.bfloat16
    bits = tt.view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(t.to_numpy().view(np.uint16), bits)
    back = torch.from_dlpack(t)
    assert back.dtype == torch.bfloat16
    assert torch.equal(back, tt)


def test_from_torch_strided_view() -> None:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    t = Tensor.from_dlpack(base[:, 1::2])
    assert t.shape == (3, 2)
    assert not t.is_contiguous
    np.testing.assert_array_equal(t.to_numpy(), base[:, 1::2].numpy())
    base[2, 3] = -1
    assert t[2, 1].item() == -1


@pytest.mark.parametrize("dtype", NUMPY_NATIVE, ids=lambda d: d.name)
def test_numpy_both_ways(dtype: DType) -> None:
    a = sample(dtype, (2, 3))
    t = Tensor.from_dlpack(a)
    assert t.to_numpy() is a
    back = np.from_dlpack(t)
    assert back.dtype == a.dtype
    np.testing.assert_array_equal(back, a)
    assert np.shares_memory(back, a)


def test_numpy_strided_and_copy_flags() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    v = Tensor.from_dlpack(a[::2, ::-1])
    assert not v.is_contiguous
    assert np.shares_memory(v.to_numpy(), a)
    c = Tensor.from_dlpack(a, copy=True)
    assert not np.shares_memory(c.to_numpy(), a)
    assert Tensor.from_dlpack(a, copy=False).to_numpy() is a
    ro = np.arange(3.0)
    ro.flags.writeable = False
    assert Tensor.from_dlpack(ro).to_numpy().flags.writeable
    kept = Tensor.from_dlpack(ro, copy=False)  # never copies: a read-only tensor
    assert kept.to_numpy() is ro
    with pytest.raises(ValueError, match="read-only"):
        kept[0] = 1.0


def test_tensor_to_tensor() -> None:
    t = Tensor.from_numpy(np.arange(3, dtype=np.int32))
    assert Tensor.from_dlpack(t) is t
    c = Tensor.from_dlpack(t, copy=True)
    assert c is not t and c.to_numpy().tolist() == [0, 1, 2]


def test_torch_round_trip_through_tensor() -> None:
    tt = torch.randn(4, 5)
    back = torch.from_dlpack(Tensor.from_dlpack(tt))
    assert back.data_ptr() == tt.data_ptr()
    torch.testing.assert_close(back, tt, rtol=0, atol=0)


def test_versioned_and_legacy_capsules() -> None:
    t = Tensor.from_numpy(np.arange(4, dtype=np.float32))
    assert "dltensor_versioned" in repr(t.__dlpack__(max_version=(1, 0)))
    assert '"dltensor"' in repr(t.__dlpack__())
    bf = Tensor.zeros((2,), DType.bfloat16)
    assert "dltensor_versioned" in repr(bf.__dlpack__(max_version=(1, 0)))
    # An unconsumed capsule is freed by its producer's destructor without harm.
    del bf


def test_errors() -> None:
    with pytest.raises(TypeError, match="expected an object implementing __dlpack__, got list"):
        Tensor.from_dlpack([1, 2])
    with pytest.raises(BufferError, match="float4_e2m1fn is not supported"):
        torch.from_dlpack(Tensor.zeros((2,), DType.float4_e2m1fn))
    with pytest.raises(ValueError, match="unsupported dtype complex64"):
        Tensor.from_dlpack(torch.zeros(2, dtype=torch.complex64))

    class OnDevice:
        def __dlpack__(self, **_: object) -> None:
            raise AssertionError("must not be called")

        def __dlpack_device__(self) -> tuple[int, int]:
            return (2, 0)  # kDLCUDA

    with pytest.raises(ValueError, match=r"only host memory .* got DLPack device \(2, 0\)"):
        Tensor.from_dlpack(OnDevice())
