"""The machine-limit probes of the benchmark (benchmarks/machine.py) and the rate notes judged
against them (benchmarks/runner.py). No timing is asserted: only that the FMA loop does the
work it is credited with, and how the notes read."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is a folder of the repository, not of the package
    sys.path.insert(0, str(ROOT))

from benchmarks import machine, runner  # noqa: E402


def recurrence(kernel: machine.FmaKernel, iterations: int) -> float:
    """What the loop must store: every lane runs ``a = fma(a, m, c)`` from ``start`` in float32
    (the product of two floats is exact in float64, so one rounding to float32 after the add
    is the fused result but where a double rounding lands otherwise)."""
    m, c = float(np.float32(kernel.m)), float(np.float32(kernel.c))
    a = np.float32(kernel.start)
    for _ in range(iterations):
        a = np.float32(float(a) * m + c)
    return float(a) * kernel.chains * kernel.lanes


@pytest.fixture(scope="module")
def kernel() -> machine.FmaKernel:
    k = machine.fma_kernel()
    assert k is not None  # the compiler's own llc and a C compiler are always here
    return k


@pytest.mark.parametrize("iterations", [0, 1, 7, 1000])
def test_fma_loop_does_every_iteration(kernel: machine.FmaKernel, iterations: int) -> None:
    # The loop sums its 192 (or 80) lanes in float32: a few ulps.
    assert kernel.run(iterations) == pytest.approx(recurrence(kernel, iterations), rel=2e-6)


def test_fma_loop_keeps_its_chains_in_registers() -> None:
    # The AVX2 shape (10 chains of 8) for an AVX2 CPU: ten FMAs an iteration, no spill.
    import llvm

    llc = Path(next(iter(llvm.__path__))) / "bin" / "llc"
    asm = subprocess.run([str(llc), "-O2", "-mtriple=x86_64-unknown-linux-gnu",
                          "-mcpu=haswell", "-o", "-"], input=machine.fma_loop_ir(10, 8),
                         capture_output=True, text=True, check=True).stdout
    loop = asm[asm.index("# %loop"):]
    loop = loop[:loop.index("jne")]
    assert len(re.findall(r"vfmadd\w+\s+%ymm", loop)) == 10
    assert "rsp" not in loop


@pytest.mark.parametrize("threads", [1, 2])
def test_fma_peak_counts_flops(kernel: machine.FmaKernel, threads: int, monkeypatch) -> None:
    """The rate is threads x iterations x 2 x chains x lanes over the elapsed time: read on a
    clock that says the calibration's 2^20 iterations took 1 s (so 0.01 s of work is 10485
    iterations, raised to the floor of 2^16) and the two repeats 0.5 then 0.25 s: the best."""
    clock = iter([0.0, 1.0, 10.0, 10.5, 20.0, 20.25])
    monkeypatch.setattr(machine.time, "perf_counter", lambda: next(clock))
    peak = machine.fma_peak(threads, seconds=0.01, repeats=2)
    assert kernel.flops_per_iteration == 2 * kernel.chains * kernel.lanes
    assert peak == threads * (1 << 16) * kernel.flops_per_iteration / 0.25


def test_rates_against_the_machine() -> None:
    matmul = SimpleNamespace(flops=2 * 10**9, traffic=0)
    note = runner._rates("mm", matmul, {"ours": 10.0, "numpy": 20.0, "torch": "-"}, 8.0,
                         250e9, None)
    assert note == ("mm, median GFLOP/s (share of the FMA peak, 250.0): ours 200.0 (80%), "
                    "numpy 100.0 (40%), ours fastest 250.0 (100%)")
    chain = SimpleNamespace(flops=0, traffic=400 * 10**6)
    note = runner._rates("chain", chain, {"ours": 10.0}, 5.0, None, 50e9)
    assert note == ("chain, median GB/s (least traffic; time over the floor at the read rate, "
                    "50.0 GB/s): ours 40.0 (1.25x), ours fastest 80.0 (0.62x)")
    assert runner._rates("chain", chain, {"ours": 10.0}, None, None, None) == (
        "chain, median GB/s (least traffic): ours 40.0")


def test_blocks_start_after_untimed_calls(monkeypatch) -> None:
    """Each engine's block in each of the three rounds is preceded by untimed calls for
    WARMUP_S, which no sample includes. (Durations that are powers of two: the clock's sums
    are exact.)"""
    from benchmarks.peers import Run

    monkeypatch.setattr(runner, "SETTLE_S", 0.0)
    monkeypatch.setattr(runner, "WARMUP_S", 2.0**-5)
    now = [0.0]
    monkeypatch.setattr(runner.time, "perf_counter", lambda: now[0])
    calls = {"a": 0, "b": 0}

    def engine(name: str, seconds: float) -> Run:
        def call() -> None:
            calls[name] += 1
            now[0] += seconds
        return Run(call)

    samples = runner._time({"a": engine("a", 2.0**-7), "b": engine("b", 2.0**-10)},
                           {"a": 1, "b": 4}, 6)
    assert samples == {"a": [2.0**-7 * 1e3] * 6, "b": [2.0**-10 * 1e3] * 6}
    assert calls["a"] == 6 + 3 * 4  # four calls make the 2^-5 s of warm-up
    assert calls["b"] == 6 * 4 + 3 * 32
