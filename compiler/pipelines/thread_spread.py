"""OpenMP workers that wake on the caller's core move off it at once.

Between calls, libiomp5's worker threads spin for 200 ms and then sleep. The call that wakes
them forks from the caller's thread, and Linux may put a woken worker on the caller's own core
(wake-affine placement) while another core sits idle. The two threads then share one core: the
static halves of every parallel loop run one after the other, the finished thread spinning at
the barrier, until the kernel's load balancer moves one of them, which on the 2-vCPU machine
took 10-50 ms of calls (a depthwise-separable block 0.52-0.7 ms per call instead of 0.16-0.3:
the first samples of a block of calls after a pause, in 6 of 20 blocks of a run with the
peers' thread pools in the process).

So each ``omp.parallel`` region (after ``convert-scf-to-openmp``) learns the caller's core
(``sched_getcpu`` just before the fork) and each worker starts the region with
``__max_leave_callers_cpu(core)``: a worker on that core removes it from its own affinity mask
(``sched_setaffinity`` migrates the thread before it returns), then restores the mask it had,
so that the scheduler stays free to place it later. The caller's thread is never touched. The
cost where nothing collides: ``omp_get_thread_num`` and ``sched_getcpu`` (a vDSO call), tens
of nanoseconds per region; a collision costs the two system calls and the move, once. Where
the caller's core is the only one the worker may use, ``sched_setaffinity`` refuses the empty
mask and nothing moves. Workers that share a core with each other (more than two threads) are
left to the scheduler.

Linux only (``sched_getcpu`` and the affinity calls are glibc's); elsewhere the module is left
as it is.
"""

from __future__ import annotations

import sys

from mlir import ir
from mlir.dialects import llvm

from max.compiler.passes.ir_util import symbol_names

HELPER = "__max_leave_callers_cpu"
_CPU_SET_BYTES = 128  # glibc's cpu_set_t: 1024 bits, CPU n is bit n % 64 of word n / 64

_DECLARATIONS = {
    "sched_getcpu": "llvm.func @sched_getcpu() -> i32",
    "omp_get_thread_num": "llvm.func @omp_get_thread_num() -> i32",
    "sched_getaffinity": "llvm.func @sched_getaffinity(i32, i64, !llvm.ptr) -> i32",
    "sched_setaffinity": "llvm.func @sched_setaffinity(i32, i64, !llvm.ptr) -> i32",
}

# linkonce_odr: every part that llvm_parts compiles separately gets its own copy (inlinable).
_HELPER_TEXT = f"""
llvm.func linkonce_odr @{HELPER}(%caller: i32) {{
  %zero = llvm.mlir.constant(0 : i32) : i32
  %one = llvm.mlir.constant(1 : i64) : i64
  %size = llvm.mlir.constant({_CPU_SET_BYTES} : i64) : i64
  %saved = llvm.alloca %one x !llvm.array<16 x i64> : (i64) -> !llvm.ptr
  %mask = llvm.alloca %one x !llvm.array<16 x i64> : (i64) -> !llvm.ptr
  %thread = llvm.call @omp_get_thread_num() : () -> i32
  %worker = llvm.icmp "ne" %thread, %zero : i32
  llvm.cond_br %worker, ^where, ^done
^where:
  %cpu = llvm.call @sched_getcpu() : () -> i32
  %bits = llvm.mlir.constant({_CPU_SET_BYTES * 8} : i32) : i32
  %same = llvm.icmp "eq" %cpu, %caller : i32
  %in_set = llvm.icmp "ult" %caller, %bits : i32
  %collides = llvm.and %same, %in_set : i1
  llvm.cond_br %collides, ^save, ^done
^save:
  %got = llvm.call @sched_getaffinity(%zero, %size, %saved) : (i32, i64, !llvm.ptr) -> i32
  %have = llvm.icmp "eq" %got, %zero : i32
  llvm.cond_br %have, ^move, ^done
^move:
  "llvm.intr.memcpy"(%mask, %saved, %size) <{{isVolatile = false}}> : (!llvm.ptr, !llvm.ptr, i64) -> ()
  %c6 = llvm.mlir.constant(6 : i32) : i32
  %c63 = llvm.mlir.constant(63 : i32) : i32
  %word32 = llvm.lshr %caller, %c6 : i32
  %bit32 = llvm.and %caller, %c63 : i32
  %word_index = llvm.zext %word32 : i32 to i64
  %bit_index = llvm.zext %bit32 : i32 to i64
  %at = llvm.getelementptr %mask[%word_index] : (!llvm.ptr, i64) -> !llvm.ptr, i64
  %word = llvm.load %at : !llvm.ptr -> i64
  %bit = llvm.shl %one, %bit_index : i64
  %all = llvm.mlir.constant(-1 : i64) : i64
  %others = llvm.xor %bit, %all : i64
  %left = llvm.and %word, %others : i64
  llvm.store %left, %at : i64, !llvm.ptr
  %moved = llvm.call @sched_setaffinity(%zero, %size, %mask) : (i32, i64, !llvm.ptr) -> i32
  %freed = llvm.call @sched_setaffinity(%zero, %size, %saved) : (i32, i64, !llvm.ptr) -> i32
  llvm.br ^done
^done:
  llvm.return
}}
"""


def _add_helper(module: ir.Module) -> None:
    have = symbol_names(module.body)
    text = "\n".join(d for name, d in _DECLARATIONS.items() if name not in have)
    if HELPER not in have:
        text += _HELPER_TEXT
    parsed = ir.Module.parse(text, module.context)
    for op in list(parsed.body.operations):
        module.body.append(op)


def _has_helper_call(par: ir.Operation) -> bool:
    first = par.regions[0].blocks[0].operations[0]
    return (first.name == "llvm.call" and "callee" in first.attributes
            and ir.FlatSymbolRefAttr(first.attributes["callee"]).value == HELPER)


def spread_workers(module: ir.Module, parallels: list[ir.Operation] | None = None) -> int:
    """Gives every ``omp.parallel`` of ``module`` (``parallels``, where the caller has them
    from ``thread_gate.parallel_regions``) the caller's core and its workers the call that
    moves them off it (once: a region that has it is left alone); returns how many regions
    it changed. Nothing off Linux."""
    if not sys.platform.startswith("linux"):
        return 0
    from max.compiler.pipelines.thread_gate import parallel_regions

    regions = [op for op in (parallel_regions(module) if parallels is None else parallels)
               if not _has_helper_call(op)]
    if not regions:
        return 0
    with module.context, ir.Location.unknown():
        _add_helper(module)
        i32 = ir.IntegerType.get_signless(32)
        for par in regions:
            with ir.InsertionPoint(par):
                cpu = llvm.CallOp(i32, [], [], [], callee="sched_getcpu").result
            with ir.InsertionPoint.at_block_begin(par.regions[0].blocks[0]):
                llvm.CallOp(None, [cpu], [], [], callee=HELPER)
    return len(regions)


__all__ = ["HELPER", "spread_workers"]
