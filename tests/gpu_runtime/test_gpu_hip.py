"""The same runtime on HIP: the shim's HIP table (``hip*`` names, ``hipMemcpyDefault``,
HIP's error names), on the fake HIP library of ``conftest.py`` (it mocks ONLY the vendor
library)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from max import driver, engine
from max.driver import CPU, Accelerator, DeviceStream, Tensor, _gpu
from max.dtype import DType
from max.graph import ops
from max.runtime.gpu import GpuError

from launches import check_launches, gpu_graph


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


@pytest.fixture
def gfx942_topology(tmp_path, monkeypatch):
    """A KFD topology (what Linux's amdgpu driver shows in sysfs) of two gfx942 GPUs."""
    for node, version in ((0, 0), (1, 90402), (2, 90402)):  # node 0: the CPU
        (tmp_path / str(node)).mkdir()
        (tmp_path / str(node) / "properties").write_text(
            f"cpu_cores_count 0\ngfx_target_version {version}\n")
    monkeypatch.setattr(_gpu, "KFD_TOPOLOGY", str(tmp_path))
    _gpu.architecture_name.cache_clear()
    yield
    _gpu.architecture_name.cache_clear()


def test_amd_graph_runs_through_the_same_runtime(fake_hip, gfx942_topology) -> None:
    if shutil.which("llc-19") is None or shutil.which("ld.lld-19") is None:
        pytest.skip("the amd target needs llc-19 and ld.lld-19")
    gpu = Accelerator()
    assert gpu.architecture_name == "gfx942"
    graph = gpu_graph(lambda x, y: ops.softmax(x * y), [(DType.float32, (8, 256))] * 2,
                      name="amdg")
    model = engine.InferenceSession(devices=[gpu]).load(graph)
    assert fake_hip.lib.fake_module_loads() >= 1  # the HSACO, through hipModuleLoadData
    fake_hip.lib.fake_clear_launches()
    x = Tensor(np.ones((8, 256), np.float32), gpu)
    (out,) = model.execute(x, np.ones((8, 256), np.float32))
    assert out.device == gpu and out.shape == (8, 256)
    check_launches(fake_hip, graph, gpu.default_stream.handle, [x, out], target="amd")
