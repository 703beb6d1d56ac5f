"""max.driver on an accelerator: device memory, copies, streams, pinned memory, DLPack.

Runs without a GPU on the fake CUDA driver of ``conftest.py`` (it mocks ONLY the vendor
library: device memory is host memory behind tagged addresses, which the host cannot
dereference, so every byte checked here went through the shim's copies)."""

from __future__ import annotations

import gc

import ml_dtypes
import numpy as np
import pytest

from max import driver
from max.driver import CPU, Accelerator, DeviceStream, Tensor
from max.dtype import DType
from max.runtime.gpu import GpuError

TAG = 1 << 62  # the fake driver's device addresses


def test_fake_driver_accelerators(fake_cuda) -> None:
    assert driver.accelerator_count() == 2
    assert driver.accelerator_api() == "cuda"
    assert driver.accelerator_architecture_name() == "sm_90"
    gpu = Accelerator()
    assert gpu is Accelerator(0) and gpu.api == "cuda" and not gpu.is_host
    with pytest.raises(ValueError, match="out of range"):
        Accelerator(2)
    stats = gpu.stats
    assert stats["total_memory"] == 1 << 32 and 0 < stats["free_memory"] <= 1 << 32
    # the device's memory pool keeps what stream-ordered frees return
    assert fake_cuda.lib.fake_pool_threshold() == (1 << 64) - 1


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8, np.int64, np.bool_,
                                   ml_dtypes.bfloat16, np.uint16])
def test_bytes_round_trip_exactly(fake_cuda, dtype) -> None:
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=3 * 5 * 7 * np.dtype(dtype).itemsize, dtype=np.uint8)
    if dtype is np.bool_:
        raw &= 1
    a = raw.view(dtype).reshape(3, 5, 7)
    t = Tensor.from_numpy(a).to(Accelerator())
    assert t.device == Accelerator() and not t.is_host and t.shape == (3, 5, 7)
    ptr = t._data_ptr()
    assert ptr & TAG and fake_cuda.alloc_size(ptr) == a.nbytes
    back = t.to(CPU())
    assert back.is_host
    assert back.to_numpy().tobytes() == a.tobytes()


def test_copies_between_devices(fake_cuda) -> None:
    a = np.arange(24, dtype=np.int32).reshape(2, 12)
    gpu0, gpu1 = Accelerator(0), Accelerator(1)
    on0 = Tensor(a, gpu0)
    on1 = on0.to(gpu1)
    assert on1.device == gpu1 and on0.to(gpu0) is on0
    assert fake_cuda.alloc_device(on1._data_ptr()) == 1
    assert fake_cuda.alloc_device(on0._data_ptr()) == 0
    dup = on1.copy()
    assert dup.device == gpu1 and dup._data_ptr() != on1._data_ptr()
    np.testing.assert_array_equal(dup.to(CPU()).to_numpy(), a)
    # inplace_copy_from between any two devices
    dst = Tensor(DType.int32, (2, 12), gpu0)
    dst.inplace_copy_from(on1)
    host = Tensor(DType.int32, (2, 12))
    host.inplace_copy_from(dst)
    np.testing.assert_array_equal(host.to_numpy(), a)
    dst.inplace_copy_from(Tensor.from_numpy(a[::-1].copy()))
    np.testing.assert_array_equal(dst.to(CPU()).to_numpy(), a[::-1])
    with pytest.raises(ValueError, match="sizes differ"):
        dst.inplace_copy_from(Tensor(DType.int32, (3,), gpu1))
    # a strided host view is packed on its way to the GPU
    strided = Tensor.from_numpy(a)[:, ::3]
    np.testing.assert_array_equal(strided.to(gpu0).to(CPU()).to_numpy(), a[:, ::3])


def test_zeros_scalar_view_item(fake_cuda) -> None:
    gpu = Accelerator()
    z = Tensor.zeros((4, 4), DType.float32, gpu)
    np.testing.assert_array_equal(z.to(CPU()).to_numpy(), np.zeros((4, 4), np.float32))
    s = Tensor.scalar(2.5, DType.float32, gpu)
    assert s.device == gpu and s.item() == 2.5
    a = np.linspace(-1, 1, 8, dtype=np.float32)
    t = Tensor(a, gpu)
    v = t.view(DType.int32)
    assert v._data_ptr() == t._data_ptr() and v.shape == (8,)
    np.testing.assert_array_equal(v.to(CPU()).to_numpy(), a.view(np.int32))
    assert t.view(DType.uint8, (32,)).shape == (32,)
    with pytest.raises(ValueError, match="do not fill"):
        t.view(DType.float32, (3,))
    assert "gpu:0" in str(t) and "-1." in str(t)


def test_host_only_operations_raise(fake_cuda) -> None:
    t = Tensor(DType.float32, (3,), Accelerator())
    with pytest.raises(RuntimeError, match="to_numpy: the tensor is on gpu:0"):
        t.to_numpy()
    with pytest.raises(ValueError, match="indexing: the tensor is in gpu:0 memory"):
        t[0]
    with pytest.raises(ValueError, match="indexing"):
        t[0] = 1.0
    assert t.is_contiguous


def test_out_of_memory_names_the_vendor_error(fake_cuda) -> None:
    fake_cuda.lib.fake_set_memory_limit(1 << 20)
    with pytest.raises(GpuError, match=r"allocating 4194304 bytes on gpu:0: cuMemAllocAsync "
                       r"failed: CUDA_ERROR_OUT_OF_MEMORY \(2\): out of memory"):
        Tensor(DType.float32, (1 << 20,), Accelerator())
    # the runtime still works after the error
    assert Tensor(np.ones(4, np.float32), Accelerator()).to(CPU()).to_numpy().sum() == 4


def test_device_memory_limit(fake_cuda) -> None:
    gpu = Accelerator(1, device_memory_limit=4096)  # first creation after the switch
    keep = Tensor(DType.uint8, (4000,), gpu)
    with pytest.raises(ValueError, match="exceeds its device_memory_limit of 4096 bytes"):
        Tensor(DType.uint8, (200,), gpu)
    del keep
    gc.collect()
    Tensor(DType.uint8, (200,), gpu)


def test_memory_is_freed_with_the_last_tensor(fake_cuda) -> None:
    gc.collect()
    before = fake_cuda.live_allocations()
    t = Tensor(DType.float32, (100,), Accelerator())
    v = t.view(DType.int32)
    del t
    gc.collect()
    assert fake_cuda.live_allocations() == before + 1  # the view keeps it
    del v
    gc.collect()
    assert fake_cuda.live_allocations() == before


def test_streams(fake_cuda) -> None:
    gpu = Accelerator()
    default = gpu.default_stream
    stream = DeviceStream(gpu)
    assert stream.handle and default.handle and stream.handle != default.handle
    assert stream.device == gpu
    waits = fake_cuda.lib.fake_stream_waits()
    stream.wait_for(default)
    stream.wait_for(gpu)
    assert fake_cuda.lib.fake_stream_waits() == waits + 2
    stream.synchronize()
    gpu.synchronize()
    t = Tensor(DType.float32, (4,), stream=stream)
    assert t.stream is stream and t.device == gpu
    moved = t.to(default)
    assert moved is not t and moved.stream is default
    assert t.to(stream) is t
    on_cpu = DeviceStream(CPU())
    assert on_cpu.handle == 0
    stream.wait_for(on_cpu)


def test_pinned_host_memory(fake_cuda) -> None:
    t = Tensor(DType.float32, (16,), pinned=True)
    assert t.pinned and t.is_host
    assert fake_cuda.alloc_size(t._data_ptr()) == 64  # the driver's page-locked memory
    t.to_numpy()[:] = np.arange(16)
    np.testing.assert_array_equal(t.to(Accelerator()).to(CPU()).to_numpy(), np.arange(16))


class _Producer:
    """A DLPack producer handing out one capsule (as a CUDA torch tensor would)."""

    def __init__(self, capsule, device) -> None:
        self.capsule, self.device, self.streams = capsule, device, []

    def __dlpack__(self, stream=None, max_version=None):
        self.streams.append(stream)
        return self.capsule

    def __dlpack_device__(self):
        return self.device


@pytest.mark.parametrize("max_version", [None, (1, 0)])
def test_dlpack_zero_copy(fake_cuda, max_version) -> None:
    gc.collect()
    before = fake_cuda.live_allocations()
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = Tensor(a, Accelerator(1))
    assert t.__dlpack_device__() == (2, 1)  # kDLCUDA, device 1
    producer = _Producer(t.__dlpack__(max_version=max_version), t.__dlpack_device__())
    imported = Tensor.from_dlpack(producer)
    assert producer.streams == [Accelerator(1).default_stream.handle]
    assert imported._data_ptr() == t._data_ptr()  # zero copy
    assert imported.device == Accelerator(1) and imported.dtype == DType.float32
    np.testing.assert_array_equal(imported.to(CPU()).to_numpy(), a)
    del t, producer
    gc.collect()
    assert fake_cuda.live_allocations() == before + 1  # the import keeps the memory alive
    del imported
    gc.collect()
    assert fake_cuda.live_allocations() == before
    # a capsule never consumed releases its tensor when it goes
    capsule = Tensor(a, Accelerator(0)).__dlpack__()
    gc.collect()
    assert fake_cuda.live_allocations() == before + 1
    del capsule
    gc.collect()
    assert fake_cuda.live_allocations() == before


def test_dlpack_bfloat16_and_wrong_device_kind(fake_cuda) -> None:
    a = np.arange(6, dtype=np.float32).astype(ml_dtypes.bfloat16)
    t = Tensor(a, Accelerator())
    imported = Tensor.from_dlpack(_Producer(t.__dlpack__(), (2, 0)))
    assert imported.dtype == DType.bfloat16
    assert imported.to(CPU()).to_numpy().tobytes() == a.tobytes()
    with pytest.raises(ValueError, match=r"DLPack device type 10 \(kDLROCM\) on a cuda system"):
        Tensor.from_dlpack(_Producer(t.__dlpack__(), (10, 0)))
