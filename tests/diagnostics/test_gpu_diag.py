"""max.diagnostics.gpu: GPU statistics from NVML / amdsmi, synchronous and in the background.

This machine has no GPU, so two kinds of tests: the real vendor libraries (absent, or present
without their driver) must give empty results without raising; and `fake_vendors/` stands in
for the vendor libraries this machine lacks (`pynvml`, `amdsmi`: the vendor's API only, none of
our code), returning known numbers for two GPUs each, so that the values, units and device
names `max.diagnostics.gpu` reports can be checked exactly.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from max.diagnostics.gpu import (
    BackgroundRecorder,
    GPUDiagContext,
    GPUStats,
    MemoryStats,
    UtilizationStats,
)

FAKES = Path(__file__).parent / "fake_vendors"
VENDORS = ("pynvml", "amdsmi")
GiB = 2**30
MiB = 2**20
HAS_GPU = any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/kfd"))

# What the fakes report, in the units the reference documents: bytes and percent.
EXPECTED = {
    "nv0": GPUStats(
        MemoryStats(total_bytes=80 * GiB, free_bytes=80 * GiB - 512 * MiB - 10 * GiB,
                    used_bytes=10 * GiB, reserved_bytes=512 * MiB),
        UtilizationStats(gpu_usage_percent=37, memory_activity_percent=12),
    ),
    "nv1": GPUStats(
        MemoryStats(total_bytes=24 * GiB, free_bytes=24 * GiB - 256 * MiB - 1 * GiB,
                    used_bytes=1 * GiB, reserved_bytes=256 * MiB),
        UtilizationStats(gpu_usage_percent=0, memory_activity_percent=3),
    ),
    "amd0": GPUStats(
        MemoryStats(total_bytes=192 * GiB, free_bytes=189 * GiB, used_bytes=3 * GiB,
                    reserved_bytes=None),
        UtilizationStats(gpu_usage_percent=55, memory_activity_percent=20),
    ),
    "amd1": GPUStats(
        MemoryStats(total_bytes=64 * GiB, free_bytes=64 * GiB, used_bytes=0, reserved_bytes=None),
        UtilizationStats(gpu_usage_percent=0, memory_activity_percent=None),
    ),
}


def _forget_vendor_modules() -> None:
    for name in VENDORS:
        sys.modules.pop(name, None)


@pytest.fixture
def fake_vendors(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Put the stand-in vendor libraries first on sys.path (the recorder's child gets it too)."""
    for name in ("FAKE_GPU_FAIL", "FAKE_GPU_LOG", "FAKE_NVML_NO_V2", "FAKE_NVML_NO_DRIVER"):
        monkeypatch.delenv(name, raising=False)
    saved = {name: sys.modules[name] for name in VENDORS if name in sys.modules}
    _forget_vendor_modules()
    monkeypatch.syspath_prepend(str(FAKES))
    yield
    _forget_vendor_modules()
    sys.modules.update(saved)


# --- The real vendor libraries: absent or without a driver on this machine --------------------


@pytest.mark.skipif(HAS_GPU, reason="checks the behaviour without a GPU")
def test_real_libraries_give_empty_stats(capfd: pytest.CaptureFixture[str]) -> None:
    with GPUDiagContext() as ctx:
        assert ctx.get_stats() == {}
        assert ctx.get_stats() == {}
    # amdsmi, when installed without ROCm, prints install hints while importing: discarded.
    assert capfd.readouterr().out == ""


@pytest.mark.skipif(HAS_GPU, reason="checks the behaviour without a GPU")
@pytest.mark.skipif(importlib.util.find_spec("pynvml") is None, reason="nvidia-ml-py absent")
def test_nvml_present_without_driver() -> None:
    import pynvml

    with pytest.raises(pynvml.NVMLError):
        pynvml.nvmlInit()
    with GPUDiagContext() as ctx:
        assert ctx.get_stats() == {}


def test_vendor_libraries_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VENDORS:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError
    with GPUDiagContext() as ctx:
        assert ctx.get_stats() == {}


@pytest.mark.skipif(HAS_GPU, reason="checks the behaviour without a GPU")
def test_real_recorder_records_nothing(recwarn: pytest.WarningsRecorder) -> None:
    with BackgroundRecorder(interval=0.01) as recorder:
        time.sleep(0.05)
    assert recorder.stats == []
    assert len(recwarn) == 0


def test_real_libraries_report_consistent_values() -> None:
    """On any machine: whatever is reported is well formed (on a GPU machine, real values)."""
    with GPUDiagContext() as ctx:
        stats = ctx.get_stats()
    for gpu_id, gpu in stats.items():
        assert re.fullmatch(r"(nv|amd)\d+", gpu_id)
        assert 0 <= gpu.memory.used_bytes <= gpu.memory.total_bytes
        assert 0 <= gpu.memory.free_bytes <= gpu.memory.total_bytes
        assert 0 <= gpu.utilization.gpu_usage_percent <= 100


# --- Stand-in vendor libraries with two GPUs each ------------------------------------------------


def test_stats_of_two_nvidia_and_two_amd_gpus(
    fake_vendors: None, capfd: pytest.CaptureFixture[str]
) -> None:
    with GPUDiagContext() as ctx:
        stats = ctx.get_stats()
    assert list(stats) == ["nv0", "nv1", "amd0", "amd1"]
    assert stats == EXPECTED
    assert stats["nv0"].memory.used_bytes == 10737418240
    assert stats["amd1"].utilization.memory_activity_percent is None  # amdsmi said "N/A"
    assert capfd.readouterr().out == ""  # the vendor's prints are discarded
    # The vendor libraries are shut down on exit.
    assert sys.modules["pynvml"]._initialised == 0
    assert sys.modules["amdsmi"]._initialised is False


def test_failing_device_is_left_out(fake_vendors: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GPU_FAIL", "nv1,amd0")
    with GPUDiagContext() as ctx:
        stats = ctx.get_stats()
    assert stats == {"nv0": EXPECTED["nv0"], "amd1": EXPECTED["amd1"]}


def test_nvml_without_memory_info_v2(fake_vendors: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NVML_NO_V2", "1")
    with GPUDiagContext() as ctx:
        stats = ctx.get_stats()
    # NVML's v1 has no `reserved` field and counts the reserved memory as used.
    assert stats["nv0"].memory == MemoryStats(
        total_bytes=80 * GiB, free_bytes=80 * GiB - 512 * MiB - 10 * GiB,
        used_bytes=10 * GiB + 512 * MiB, reserved_bytes=None,
    )
    assert stats["amd0"] == EXPECTED["amd0"]


def test_nvml_without_driver_keeps_amd(fake_vendors: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NVML_NO_DRIVER", "1")
    with GPUDiagContext() as ctx:
        assert ctx.get_stats() == {"amd0": EXPECTED["amd0"], "amd1": EXPECTED["amd1"]}


def test_get_stats_outside_the_context() -> None:
    ctx = GPUDiagContext()
    with pytest.raises(RuntimeError, match=r"needs an open context"):
        ctx.get_stats()
    with ctx:
        pass
    with pytest.raises(RuntimeError, match=r"needs an open context"):
        ctx.get_stats()


def test_recorder_collects_samples(
    fake_vendors: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = tmp_path / "queries.log"
    monkeypatch.setenv("FAKE_GPU_LOG", str(log))
    with BackgroundRecorder(interval=0.01) as recorder:
        with pytest.raises(RuntimeError, match=r"only after the recorder's `with` block"):
            _ = recorder.stats
        deadline = time.monotonic() + 20
        while log.read_text().split().count("nv0") < 5:  # wait for 5 samples in the child
            assert time.monotonic() < deadline, "the recorder took no samples"
            time.sleep(0.01)
    samples = recorder.stats
    assert len(samples) >= 6  # the 5 awaited, and one more on exit
    assert all(sample == EXPECTED for sample in samples)
    # Every query the child made belongs to a returned sample.
    assert log.read_text().split().count("nv0") == len(samples)


def test_recorder_short_workload_has_first_and_last_sample(fake_vendors: None) -> None:
    with BackgroundRecorder(interval=60) as recorder:
        pass
    assert recorder.stats == [EXPECTED, EXPECTED]


def test_recorder_with_failing_device(fake_vendors: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GPU_FAIL", "nv0")
    with BackgroundRecorder(interval=60) as recorder:
        pass
    expected = {k: v for k, v in EXPECTED.items() if k != "nv0"}
    assert recorder.stats == [expected, expected]


def test_recorder_sampling_process_crash_warns(
    fake_vendors: None, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A bug in the sampling process costs the samples, with a warning, not the workload."""
    monkeypatch.setenv("FAKE_GPU_CRASH", "1")
    failed = r"the sampling process failed \(it exited with code 1\)"
    with pytest.warns(RuntimeWarning, match=failed), BackgroundRecorder(interval=60) as recorder:
        pass
    assert recorder.stats == []
    assert "ZeroDivisionError: a bug, not an NVML error" in capfd.readouterr().err


def test_recorder_does_not_rerun_an_unguarded_script(tmp_path: Path) -> None:
    """A script without `if __name__ == "__main__"` runs once (no re-import by the child)."""
    script = tmp_path / "workload.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(FAKES)!r})
        from max.diagnostics.gpu import BackgroundRecorder
        print("workload")
        with BackgroundRecorder(interval=60) as recorder:
            pass
        print(len(recorder.stats), sorted(recorder.stats[0]))
    """))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout == "workload\n2 ['amd0', 'amd1', 'nv0', 'nv1']\n"


@pytest.mark.parametrize("interval", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_recorder_rejects_bad_interval(interval: object) -> None:
    with pytest.raises(ValueError, match=r"interval must be a positive number of seconds"):
        BackgroundRecorder(interval=interval)  # type: ignore[arg-type]
