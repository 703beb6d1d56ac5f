"""Fixtures of the GPU runtime tests: a fake CUDA driver library (``fake_cuda.c``, compiled
here), which mocks ONLY the vendor library; the shim (``runtime/mgpu.c``), ``max.driver``
and ``max.engine`` run unchanged on top of it."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from max.driver import _gpu

SOURCE = Path(__file__).with_name("fake_cuda.c")
HIP_SOURCE = Path(__file__).with_name("fake_hip.c")


@dataclass(frozen=True)
class Launch:
    """One recorded ``cuLaunchKernel``."""

    name: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_bytes: int
    stream: int
    params: tuple[int, ...]


class FakeCuda:
    """The fake driver's introspection calls."""

    def __init__(self, path: Path) -> None:
        self.path = path
        lib = ctypes.CDLL(str(path))
        lib.fake_alloc_size.restype = ctypes.c_longlong
        lib.fake_alloc_size.argtypes = [ctypes.c_ulonglong]
        lib.fake_allocated_size.restype = ctypes.c_longlong
        lib.fake_allocated_size.argtypes = [ctypes.c_ulonglong]
        lib.fake_alloc_device.argtypes = [ctypes.c_ulonglong]
        lib.fake_set_memory_limit.argtypes = [ctypes.c_size_t]
        lib.fake_hide_kernel.argtypes = [ctypes.c_char_p]
        lib.fake_pool_threshold.restype = ctypes.c_ulonglong
        self.lib = lib

    def launches(self) -> list[Launch]:
        name = ctypes.create_string_buffer(128)
        dims = (ctypes.c_longlong * 7)()
        params = (ctypes.c_ulonglong * 96)()
        stream = ctypes.c_void_p()
        out = []
        for i in range(self.lib.fake_launch_count()):
            n = self.lib.fake_launch(i, name, dims, params, ctypes.byref(stream))
            out.append(Launch(name.value.decode(), tuple(dims[:3]), tuple(dims[3:6]), dims[6],
                              stream.value or 0, tuple(params[:n])))
        return out

    def alloc_size(self, ptr: int) -> int:
        """Bytes of the live allocation starting at ``ptr`` (-1: none starts there)."""
        return self.lib.fake_alloc_size(ptr)

    def allocated_size(self, ptr: int) -> int:
        """Bytes of the latest allocation that started at ``ptr``, freed since or not."""
        return self.lib.fake_allocated_size(ptr)

    def alloc_device(self, ptr: int) -> int:
        return self.lib.fake_alloc_device(ptr)

    def live_allocations(self) -> int:
        return self.lib.fake_live_allocations()


def _build(source: Path, out: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to build the fake driver")
    subprocess.run([cc, "-std=gnu11", "-O1", "-shared", "-fPIC", "-o", str(out), str(source)],
                   check=True)
    return out


@pytest.fixture(scope="session")
def fake_cuda_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(SOURCE, tmp_path_factory.mktemp("fake-cuda") / "libcuda_fake.so")


@pytest.fixture(scope="session")
def fake_hip_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(HIP_SOURCE, tmp_path_factory.mktemp("fake-hip") / "libamdhip64_fake.so")


@pytest.fixture
def fake_hip(fake_hip_library: Path) -> Iterator[FakeCuda]:
    """The runtime on the fake HIP library (2 GPUs) for one test; the system's after it."""
    fake = FakeCuda(fake_hip_library)
    _gpu.use_driver_library(str(fake_hip_library))
    try:
        yield fake
    finally:
        import gc

        gc.collect()
        fake.lib.fake_set_memory_limit(1 << 32)
        _gpu.use_driver_library(None)


@pytest.fixture
def fake_cuda(fake_cuda_library: Path) -> Iterator[FakeCuda]:
    """The runtime on the fake driver (2 sm_90 GPUs) for one test; the system's after it."""
    fake = FakeCuda(fake_cuda_library)
    fake.lib.fake_clear_launches()
    _gpu.use_driver_library(str(fake_cuda_library))
    try:
        yield fake
    finally:
        import gc

        gc.collect()  # tensors of the test free their memory through this library
        fake.lib.fake_set_memory_limit(1 << 32)
        fake.lib.fake_hide_kernel(None)
        fake.lib.fake_fail_jit(0)
        _gpu.use_driver_library(None)
