"""Devices on a machine without an accelerator: CPU, Accelerator errors, specs, streams."""

from __future__ import annotations

import pickle

import pytest

from max import driver
from max.driver import CPU, Accelerator, Device, DeviceSpec, DeviceStream

needs_no_gpu = pytest.mark.skipif(
    driver.accelerator_count() > 0, reason="checks the behaviour without an accelerator"
)


def test_public_names() -> None:
    assert driver.__all__ == sorted(driver.__all__)
    for name in driver.__all__:
        assert getattr(driver, name) is not None
    assert driver.Buffer is driver.Tensor


def test_cpu_properties() -> None:
    cpu = CPU()
    assert cpu.label == "cpu"
    assert cpu.id == 0
    assert cpu.api == "cpu"
    assert cpu.is_host
    assert cpu.is_compatible
    assert isinstance(cpu, Device)
    assert repr(cpu) == "Device(type=cpu,id=0)"
    assert str(cpu) == "cpu:0"


def test_cpu_is_interned_and_hashable() -> None:
    assert CPU() is CPU(0) is CPU(-1)
    assert CPU() == CPU(0)
    assert len({CPU(), CPU(0), Device.cpu()}) == 1
    assert pickle.loads(pickle.dumps(CPU())) is CPU()
    assert CPU() != "cpu"


def test_cpu_bad_id() -> None:
    with pytest.raises(ValueError, match="CPU device id must be -1 or 0"):
        CPU(3)


def test_device_is_abstract() -> None:
    with pytest.raises(TypeError, match="Device cannot be instantiated directly"):
        Device()


def test_cpu_architecture_name_raises() -> None:
    with pytest.raises(ValueError, match="CPU device has no accelerator architecture"):
        _ = CPU().architecture_name


def test_cpu_stats_and_access() -> None:
    stats = CPU().stats
    assert isinstance(stats, dict)
    if stats:
        assert 0 < stats["free_memory"] <= stats["total_memory"]
    assert CPU().can_access(CPU())
    CPU().synchronize()


def test_default_stream() -> None:
    stream = CPU().default_stream
    assert stream is CPU().default_stream
    assert stream.device is CPU()
    new = DeviceStream(CPU())
    assert new.device == CPU()
    new.wait_for(stream)
    new.wait_for(CPU())
    new.synchronize()
    with pytest.raises(TypeError, match="DeviceStream or a Device"):
        new.wait_for(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="DeviceStream needs a Device"):
        DeviceStream("cpu")  # type: ignore[arg-type]


@needs_no_gpu
def test_no_accelerator() -> None:
    assert driver.accelerator_count() == 0
    with pytest.raises(RuntimeError, match=r"no accelerator found: accelerator_count\(\) is 0"):
        Accelerator()
    with pytest.raises(RuntimeError, match="no accelerator found"):
        Accelerator(id=1, device_memory_limit=1 << 20)
    assert driver.accelerator_api() == "cpu"
    with pytest.raises(ValueError, match="no accelerator architecture"):
        driver.accelerator_architecture_name()


def test_device_spec() -> None:
    assert DeviceSpec.cpu() == DeviceSpec(-1, "cpu")
    assert DeviceSpec.accelerator() == DeviceSpec(0, "gpu")
    assert DeviceSpec.accelerator(2).id == 2
    assert DeviceSpec(5).device_type == "cpu"
    with pytest.raises(ValueError, match="accelerator id must be >= 0"):
        DeviceSpec(-1, "gpu")
    with pytest.raises(ValueError, match="device_type must be 'cpu' or 'gpu'"):
        DeviceSpec(0, "tpu")  # type: ignore[arg-type]
    assert hash(DeviceSpec.cpu()) == hash(DeviceSpec(-1))


@needs_no_gpu
def test_scan_load_and_exist() -> None:
    assert driver.scan_available_devices() == [DeviceSpec.cpu()]
    assert driver.load_devices([DeviceSpec.cpu(), DeviceSpec.cpu(0)]) == [CPU(), CPU()]
    assert driver.load_devices([]) == []
    with pytest.raises(ValueError, match="Device 0 was requested but no devices were found"):
        driver.load_devices([DeviceSpec.accelerator()])
    assert driver.devices_exist([DeviceSpec.cpu()])
    assert driver.devices_exist([])
    assert not driver.devices_exist([DeviceSpec.accelerator(0)])


@pytest.mark.gpu
@pytest.mark.skipif(driver.accelerator_count() == 0, reason="needs an accelerator")
def test_accelerator() -> None:
    gpu = Accelerator()
    assert gpu is Accelerator(0)
    assert gpu.label == "gpu" and gpu.id == 0 and not gpu.is_host
    assert gpu.api in ("cuda", "hip")
    assert gpu.architecture_name.startswith(("sm_", "gfx"))
    assert gpu != CPU()
    assert driver.load_devices(driver.scan_available_devices())[0] == gpu
    with pytest.raises(ValueError, match="out of range"):
        Accelerator(driver.accelerator_count())
