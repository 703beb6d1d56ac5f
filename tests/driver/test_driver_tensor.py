"""Host tensors: allocation, numpy round trips, views, copies, indexing, mmap."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from driver_samples import NUMPY_NATIVE, sample
from hypothesis.extra import numpy as hnp

from max.driver import CPU, Buffer, DeviceStream, Tensor
from max.dtype import DType

ALL_DTYPES = list(DType)


def check_array(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual.astype(np.float64), expected.astype(np.float64))


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 0, 4), (1, 2, 3, 4)])
def test_allocate(dtype: DType, shape: tuple[int, ...]) -> None:
    t = Tensor(dtype, shape)
    assert t.dtype is dtype
    assert t.shape == shape
    assert t.rank == len(shape)
    assert t.num_elements == int(np.prod(shape))
    assert t.element_size == dtype.size_in_bytes
    assert t.device == CPU()
    assert t.is_host and t.is_contiguous and not t.pinned
    assert t.stream is CPU().default_stream
    assert t._array.dtype == dtype.to_numpy()


def test_keyword_construction_and_stream() -> None:
    t = Tensor(shape=[2, 3], dtype=DType.float32)
    assert t.shape == (2, 3) and t.dtype is DType.float32
    s = Tensor(DType.int8, [4], DeviceStream(CPU()))
    assert s.device is CPU()
    k = Tensor(DType.int8, [4], stream=CPU().default_stream)
    assert k.shape == (4,)


def test_construct_from_array() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = Tensor(a, CPU())
    a[0, 0] = 42
    assert t.to_numpy()[0, 0] == 42
    assert Tensor(shape=a, device=CPU()).shape == (2, 3)
    assert Tensor(DType.int8, np.array([4, 5])).shape == (4, 5)  # an array of dims


def test_rank0_num_elements() -> None:
    assert Tensor(DType.float32, ()).num_elements == 1


def test_bad_construction() -> None:
    with pytest.raises(TypeError, match="dtype must be a max.dtype.DType, got 'float32'"):
        Tensor("float32", (2,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dtype must be a max.dtype.DType"):
        Tensor(np.float32, (2,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"non-negative dims, got \(2, -1\)"):
        Tensor(DType.float32, (2, -1))
    with pytest.raises(TypeError, match="shape must be a sequence of ints"):
        Tensor(DType.float32, (2.5,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a dtype and a shape"):
        Tensor(DType.float32)
    with pytest.raises(TypeError, match="device must be a max.driver.Device"):
        Tensor(DType.float32, (2,), device="cpu")  # type: ignore[arg-type]


def test_pinned_is_accepted_on_the_cpu() -> None:
    t = Tensor(DType.float32, (2,), pinned=True)
    assert t.pinned and t.is_host
    z = Tensor.zeros((3,), DType.int32, pinned=True)
    assert z.pinned and z.to_numpy().tolist() == [0, 0, 0]


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: d.name)
def test_zeros_scalar_item(dtype: DType) -> None:
    z = Tensor.zeros((2, 3), dtype)
    check_array(z.to_numpy(), np.zeros((2, 3), dtype.to_numpy()))
    value = True if dtype is DType.bool else 3
    s = Tensor.scalar(value, dtype)
    assert s.rank == 0 and s.shape == ()
    item = s.item()
    assert item == value
    expected_type = bool if dtype is DType.bool else float if dtype.is_float() else int
    assert type(item) is expected_type


def test_zeros_keywords_and_errors() -> None:
    z = Tensor.zeros(shape=[4], dtype=DType.int32, device=CPU())
    assert z.to_numpy().tolist() == [0, 0, 0, 0]
    with pytest.raises(TypeError, match="Tensor.zeros: dtype must be"):
        Tensor.zeros((2,), np.float32)  # type: ignore[arg-type]


def test_item_needs_one_element() -> None:
    t = Tensor.from_numpy(np.arange(6, dtype=np.int32).reshape(2, 3))
    with pytest.raises(ValueError,
                       match=r"item\(\) needs a tensor of one element, got shape \(2, 3\)"):
        t.item()
    assert Tensor.from_numpy(np.array([[4]], np.int64)).item() == 4
    assert Tensor.from_numpy(np.array([2.5], np.float32)).item() == 2.5
    assert t[1, 2].item() == 5
    assert Tensor.from_numpy(np.array([7.5], np.float32))[0].item() == 7.5


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: d.name)
def test_from_numpy_zero_copy(dtype: DType) -> None:
    a = sample(dtype, (2, 3))
    t = Tensor.from_numpy(a)
    assert t.dtype is dtype
    assert t.to_numpy() is a  # the same array: no copy either way
    assert t._data_ptr() == a.ctypes.data
    one = np.array(True) if dtype is DType.bool else np.array(1, dtype.to_numpy())
    a[1, 2] = one
    assert t[1, 2].item() == one.item()
    t[0, 0] = one
    assert a[0, 0] == one


def test_from_numpy_non_contiguous_copies() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = Tensor.from_numpy(a[:, ::2])
    assert t.is_contiguous
    check_array(t.to_numpy(), a[:, ::2])
    a[0, 0] = 99
    assert t.to_numpy()[0, 0] == 0


def test_from_numpy_readonly_and_byteorder_copy() -> None:
    a = np.arange(3, dtype=np.float32)
    a.flags.writeable = False
    t = Tensor.from_numpy(a)
    assert t.to_numpy().flags.writeable
    check_array(t.to_numpy(), a)
    b = np.arange(3, dtype=">i4")
    tb = Tensor.from_numpy(b)
    assert tb.dtype is DType.int32
    assert tb.to_numpy().tolist() == [0, 1, 2]


def test_from_numpy_errors() -> None:
    with pytest.raises(TypeError, match="expected a numpy.ndarray, got list"):
        Tensor.from_numpy([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported numpy dtype complex64"):
        Tensor.from_numpy(np.zeros(2, np.complex64))


@settings(deadline=None, derandomize=True, max_examples=50)
@given(
    hnp.arrays(
        dtype=st.sampled_from([d.to_numpy() for d in NUMPY_NATIVE]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
    )
)
def test_numpy_round_trip(a: np.ndarray) -> None:
    t = Tensor.from_numpy(a)
    assert t.shape == a.shape and t.dtype is DType.from_numpy(a.dtype)
    copy = t.copy()
    np.testing.assert_array_equal(copy.to_numpy(), a)
    assert copy.num_elements == a.size
    if a.size:
        assert not np.shares_memory(copy.to_numpy(), a)


def test_copy_contiguous_to() -> None:
    a = np.arange(12, dtype=np.int64).reshape(3, 4)
    t = Tensor.from_numpy(a)
    c = t.copy()
    c[0, 0] = 100
    assert a[0, 0] == 0
    assert t.copy(device=CPU()).device is CPU()
    assert t.copy(CPU().default_stream).shape == (3, 4)
    assert t.to(CPU()) is t
    assert t.to(CPU().default_stream) is t
    assert t.to([CPU(), CPU()]) == [t, t]
    view = t[:, 1::2]
    assert not view.is_contiguous
    dense = view.contiguous()
    assert dense.is_contiguous
    check_array(dense.to_numpy(), a[:, 1::2])
    assert not np.shares_memory(dense.to_numpy(), a)


def test_indexing_views() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = Tensor.from_numpy(a)
    for key in [0, (1, 2), (slice(None), 1), (Ellipsis, 3), (0, slice(None, None, -1)),
                (None, 1), (1, Ellipsis, slice(1, 3))]:
        v = t[key]
        check_array(v.to_numpy(), a[key] if isinstance(a[key], np.ndarray) else np.array(a[key]))
        assert np.shares_memory(v.to_numpy(), a)
    assert t[1, 2, 3].rank == 0
    assert not t[0, ::-1].is_contiguous  # negative steps count as non-contiguous
    assert t[1].is_contiguous
    t[0, 1] = 7.0
    np.testing.assert_array_equal(a[0, 1], np.full(4, 7.0, np.float32))
    t[1, :, 0] = Tensor.from_numpy(np.array([1, 2, 3], np.float32))
    np.testing.assert_array_equal(a[1, :, 0], [1, 2, 3])
    t[0, 0, 0] = np.float32(-1)
    assert a[0, 0, 0] == -1


def test_indexing_errors() -> None:
    t = Tensor.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(TypeError, match="basic indexing.*got list"):
        t[[0, 1]]
    with pytest.raises(TypeError, match="basic indexing.*got ndarray"):
        t[np.array([True, False])]
    with pytest.raises(TypeError, match="got bool"):
        t[True]
    with pytest.raises(IndexError):
        t[2]
    with pytest.raises(TypeError, match="basic indexing"):
        t[[0]] = 1.0


def test_bfloat16_and_float8_values() -> None:
    values = np.array([1.5, -2.0, 0.25, 3.0], np.float32)
    for dtype in (DType.bfloat16, DType.float8_e4m3fn, DType.float8_e5m2,
                  DType.float8_e4m3fnuz, DType.float8_e5m2fnuz):
        t = Tensor(dtype, (4,))
        t[:] = values.astype(dtype.to_numpy())
        np.testing.assert_array_equal(t.to_numpy().astype(np.float32), values)
        assert [t[i].item() for i in range(4)] == values.tolist()


def test_view() -> None:
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    t = Tensor.from_numpy(a)
    u8 = t.view(DType.uint8)
    assert u8.shape == (2, 12) and u8.dtype is DType.uint8
    check_array(u8.to_numpy(), a.view(np.uint8))
    flat = t.view(DType.int64, (3,))
    check_array(flat.to_numpy(), a.reshape(-1).view(np.int64))
    u8[0, 0] = 9
    assert a[0, 0] == 9  # shares memory
    same = t.view(DType.float32, [3, 2])
    assert same.shape == (3, 2)
    bits = Tensor.from_numpy(np.array([1, 0, 1], np.uint8)).view(DType.bool)
    assert bits.to_numpy().tolist() == [True, False, True]
    bf = Tensor.from_numpy(np.array([0x3FC0], np.uint16)).view(DType.bfloat16)
    assert bf[0].item() == 1.5


def test_view_errors() -> None:
    t = Tensor.from_numpy(np.arange(6, dtype=np.int32).reshape(2, 3))
    with pytest.raises(ValueError, match=r"view: cannot view int32\[2, 3\] as int64"):
        t.view(DType.int64)
    with pytest.raises(ValueError, match="24 bytes do not fill shape"):
        t.view(DType.int32, (5,))
    with pytest.raises(ValueError, match="cannot view"):
        t[:, ::2].view(DType.int32, (4,))
    with pytest.raises(TypeError, match="view: dtype must be"):
        t.view(np.int32)  # type: ignore[arg-type]


def test_inplace_copy_from() -> None:
    dst = Tensor.zeros((2, 3), DType.float32)
    src = Tensor.from_numpy(np.arange(6, dtype=np.float32))
    dst.inplace_copy_from(src)  # same size, different shape
    check_array(dst.to_numpy(), np.arange(6, dtype=np.float32).reshape(2, 3))
    dst.inplace_copy_from(dst)
    with pytest.raises(ValueError, match=r"sizes differ \(6 vs 5\)"):
        dst.inplace_copy_from(Tensor.zeros((5,), DType.float32))
    with pytest.raises(ValueError, match=r"dtypes differ \(float32 vs int32\)"):
        dst.inplace_copy_from(Tensor.zeros((6,), DType.int32))
    with pytest.raises(ValueError, match="both tensors must be contiguous"):
        dst.inplace_copy_from(Tensor.zeros((12,), DType.float32)[::2])
    with pytest.raises(TypeError, match="src must be a Tensor"):
        dst.inplace_copy_from(np.zeros(6, np.float32))  # type: ignore[arg-type]


def test_mmap(tmp_path) -> None:
    path = tmp_path / "data.bin"
    data = np.arange(10, dtype=np.float32)
    path.write_bytes(b"\x00" * 8 + data.tobytes())
    t = Tensor.mmap(path, DType.float32, (2, 5), offset=8)
    check_array(t.to_numpy(), data.reshape(2, 5))
    t[0, 0] = 100  # copy-on-write: the file keeps its bytes
    assert np.fromfile(path, np.float32, offset=8)[0] == 0
    rw = Tensor.mmap(str(path), DType.float32, 10, mode="r+", offset=8)
    rw[1] = 42
    rw.to_numpy().flush()
    assert np.fromfile(path, np.float32, offset=8)[1] == 42
    ro = Tensor.mmap(path, DType.uint8, [8], mode="r")
    assert ro.to_numpy().tolist() == [0] * 8
    bf = Tensor.mmap(path, DType.bfloat16, (4,), offset=8)
    assert bf.dtype is DType.bfloat16 and bf._array.dtype == ml_dtypes.bfloat16


def test_repr_and_str() -> None:
    t = Tensor.from_numpy(np.arange(4, dtype=np.int16))
    assert repr(t) == "Tensor(dtype=int16, shape=(4,), device=cpu:0)"
    assert str(t) == "Tensor([0 1 2 3], dtype=int16, shape=(4,), device=cpu:0)"
    assert "bfloat16" in str(Tensor.zeros((2,), DType.bfloat16))


def test_array_protocol() -> None:
    a = np.arange(4, dtype=np.float32)
    t = Buffer.from_numpy(a)
    assert np.asarray(t) is a
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert not np.shares_memory(np.array(t, copy=True), a)
