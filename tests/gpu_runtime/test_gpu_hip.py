"""The same runtime on HIP: the shim's HIP table (``hip*`` names, ``hipMemcpyDefault``,
HIP's error names), on the fake HIP library of ``conftest.py`` (it mocks ONLY the vendor
library)."""

from __future__ import annotations

import numpy as np
import pytest

from max import driver
from max.driver import CPU, Accelerator, DeviceStream, Tensor
from max.dtype import DType
from max.runtime.gpu import GpuError


def test_hip_memory_copies_and_streams(fake_hip) -> None:
    assert driver.accelerator_count() == 2 and driver.accelerator_api() == "hip"
    a = np.arange(40, dtype=np.float32).reshape(5, 8)
    gpu0, gpu1 = Accelerator(0), Accelerator(1)
    t = Tensor(a, gpu0)
    assert fake_hip.alloc_size(t._data_ptr()) == a.nbytes
    moved = t.to(gpu1)
    assert fake_hip.alloc_device(moved._data_ptr()) == 1
    np.testing.assert_array_equal(moved.to(CPU()).to_numpy(), a)
    np.testing.assert_array_equal(Tensor.zeros((3,), DType.int8, gpu1).to(CPU()).to_numpy(),
                                  np.zeros(3, np.int8))
    stream = DeviceStream(gpu0)
    stream.wait_for(gpu0)
    stream.synchronize()
    assert t.__dlpack_device__() == (10, 0)  # kDLROCM
    pinned = Tensor(DType.float32, (4,), pinned=True)
    assert fake_hip.alloc_size(pinned._data_ptr()) == 16
    assert fake_hip.lib.fake_pool_threshold() == (1 << 64) - 1


def test_hip_errors_use_hip_names(fake_hip) -> None:
    fake_hip.lib.fake_set_memory_limit(1 << 10)
    with pytest.raises(GpuError, match=r"hipMallocAsync failed: hipErrorOutOfMemory \(2\): "
                       r"out of memory"):
        Tensor(DType.float32, (1024,), Accelerator())
