"""The Python stages of the CPU pipeline, as registered passes.

Each is a thin entry to its implementation, so that a target (``compiler/targets/``) lists
them by name beside upstream passes, and ``max-opt`` replays any one of them on a module saved
between two stages (``--print-ir-after-all`` with the elements of ``CPU.pipeline()`` shows
each stage's result).
"""

from __future__ import annotations

import os

from mlir import ir

from max.compiler.passes.registry import CompilationError, register_pass
from max.compiler.pipelines.cpu import _run
from max.compiler.pipelines.kernel_names import is_plain_op, kernel_label

# Module attribute set by mo-record-fallbacks: the kernels left to plain loops.
FALLBACKS_ATTR = "mo.fallbacks"


def _threads(threads: int) -> int:
    from max.compiler.pipelines import cpu_threads

    return cpu_threads.num_threads() if threads <= 0 else threads


@register_pass("mo-duplicate-widenings", "clone an f16/bf16 -> f32 widening per consumer "
               "(before fusion, which would otherwise keep a whole f32 copy)")
def duplicate_widenings(module: ir.Module) -> None:
    from max.compiler.pipelines.widenings import duplicate_widenings as impl

    with module.context, ir.Location.unknown():
        impl(module)


@register_pass("mo-fold-transposes", "read a linalg.transpose's input in place from the "
               "linalg.generic ops that read its result (after fusion)")
def fold_transposes(module: ir.Module) -> None:
    from max.compiler.pipelines.fold_transposes import fold_transposes as impl

    with module.context, ir.Location.unknown():
        impl(module)


@register_pass("mo-widen-bool-memrefs", "memrefs of i1 (the deallocation pipeline's "
               "ownership flags) hold i8: MemRefToLLVM aborts on i1 stores (after dealloc)")
def widen_bool_memrefs(module: ir.Module) -> None:
    from max.compiler.pipelines.bool_memrefs import widen_bool_memrefs as impl

    with module.context, ir.Location.unknown():
        impl(module)


@register_pass("mo-nibble-lookup", "4-bit code -> f32 conversions as AVX-512 vpermps table "
               "lookups (after the dealloc pipeline; none without AVX-512)")
def nibble_lookup(module: ir.Module) -> None:
    from max.compiler.pipelines.nibble_lookup import lookup_nibbles

    with module.context, ir.Location.unknown():
        lookup_nibbles(module)


@register_pass("mo-dps-inits", "give every destination-passing chain its own init, and "
               "mark the outputs' inits apart from CSE (before eliminate-empty-tensors)")
def dps_inits(module: ir.Module) -> None:
    from max.compiler.pipelines.dps_inits import duplicate_shared_inits

    with module.context:
        duplicate_shared_inits(module)


@register_pass("mo-output-views", "outputs that are reshapes of a computed tensor written "
               "through a view of the output, not copied (before eliminate-empty-tensors)")
def output_views(module: ir.Module) -> None:
    from max.compiler.pipelines.output_views import write_through_reshapes

    with module.context, ir.Location.unknown():
        write_through_reshapes(module)


@register_pass("mo-schedule-tensors", "tag, split over threads, tile, peel and vectorize "
               "the linalg ops a schedule knows (on tensors, after fusion)",
               {"threads": int})
def schedule_tensors(module: ir.Module, threads: int = 0) -> None:
    """``threads``: how many threads the heavy ops use; 0 = as many as the CPUs."""
    from max.compiler.pipelines import cpu_schedule

    with module.context, ir.Location.unknown():
        cpu_schedule.schedule_tensors(module, threads=_threads(threads))


@register_pass("mo-vectorize-memrefs", "masked vectorization of the remainder tiles, then "
               "the lowering of vector ops (after bufferization)")
def vectorize_memrefs(module: ir.Module) -> None:
    from max.compiler.pipelines import memref_vectorize

    with module.context, ir.Location.unknown():
        memref_vectorize.vectorize_memrefs(module)


@register_pass("mo-fast-math", "f32 exp, erf, tanh, log, log1p, pow, sin, cos, fmod as "
               "vector code instead of libm calls")
def fast_math(module: ir.Module) -> None:
    from max.compiler.pipelines import fast_math as impl

    with module.context, ir.Location.unknown():
        impl.expand(module)


@register_pass("mo-copies-to-linalg", "memref.copy -> linalg.copy (loops, no runtime library)")
def copies_to_linalg(module: ir.Module) -> None:
    from max.compiler.pipelines.cpu import copies_to_linalg as impl

    with module.context, ir.Location.unknown():
        impl(module)


@register_pass("mo-parallel-copies", "runs of independent copies (a concat's pieces) split "
               "over threads in one scf.forall (after mo-copies-to-linalg)", {"threads": int})
def parallel_copies(module: ir.Module, threads: int = 0) -> None:
    from max.compiler.pipelines import cpu_threads
    from max.compiler.pipelines.parallel_copies import parallel_copies as impl

    if cpu_threads.omp_library_dir() is None:
        return  # no OpenMP here: a forall would run its iterations one by one anyway
    with module.context, ir.Location.unknown():
        impl(module, _threads(threads))


@register_pass("mo-vectorize-copies", "tile and vectorize (masked) every linalg.copy and "
               "linalg.map on memrefs "
               "(after mo-copies-to-linalg)")
def vectorize_copies(module: ir.Module) -> None:
    from max.compiler.pipelines.copy_schedule import vectorize_copies as impl

    with module.context, ir.Location.unknown():
        impl(module)


@register_pass("mo-deinterleave-strided-reads", "vector reads of every s-th element (small "
               "static s) as one contiguous masked read and a shuffle (after the vectorization)")
def deinterleave_strided_reads(module: ir.Module) -> None:
    from max.compiler.pipelines.strided_reads import deinterleave_strided_reads as impl

    with module.context, ir.Location.unknown():
        impl(module)


def plain_kernels(module: ir.Module) -> list[str]:
    """The kernels of a bufferized module that will become plain scalar loops.

    After the schedule, a linalg op still present (other than inside another's body) was not
    tiled and vectorized: ``convert-linalg-to-loops`` makes scalar loops of it. Each is named
    by its MO ops and its linalg op, once per name.
    """
    found: dict[str, None] = {}

    def visit(op: ir.Operation) -> ir.WalkResult:
        if is_plain_op(op.name):
            found.setdefault(f"{kernel_label(op)} ({op.name})", None)
            return ir.WalkResult.SKIP
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit, ir.WalkOrder.PRE_ORDER)
    return list(found)


def fallbacks(module: ir.Module) -> list[str]:
    """What :func:`record_fallbacks` recorded on ``module`` (empty: nothing fell back)."""
    if FALLBACKS_ATTR not in module.operation.attributes:
        return []
    return [ir.StringAttr(a).value
            for a in ir.ArrayAttr(module.operation.attributes[FALLBACKS_ATTR])]


def set_fallbacks(module: ir.Module, records: list[str]) -> None:
    with module.context:
        module.operation.attributes[FALLBACKS_ATTR] = ir.ArrayAttr.get(
            [ir.StringAttr.get(r) for r in records])


@register_pass("mo-record-fallbacks", "record the kernels left to plain loops as the module's "
               "mo.fallbacks (after bufferization and the schedule)")
def record_fallbacks(module: ir.Module) -> None:
    known = fallbacks(module)  # a whole-module fallback's record comes first
    set_fallbacks(module, known + [r for r in plain_kernels(module) if r not in known])


@register_pass("mo-forall-to-openmp", "scf.forall (the schedule's thread split) -> OpenMP "
               "parallel loops", {"threads": int})
def forall_to_openmp(module: ir.Module, threads: int = 0) -> None:
    from max.compiler.pipelines import cpu_threads, thread_gate, thread_spread

    with module.context:
        if cpu_threads.has_forall(module):
            # One thread, or no libiomp5 (a lowering rule's own forall, see quant_gemv): loops.
            n = _threads(threads)
            if n <= 1 or cpu_threads.omp_library_dir() is None:
                _run(module, "scf-forall-to-for")
            else:
                _run(module, cpu_threads.FORALL_TO_OPENMP.format(n=n))
                # Symbolic trip counts (run-time thread counts): fork no more threads than that.
                parallels = thread_gate.parallel_regions(module)
                with ir.Location.unknown():
                    thread_gate.set_num_threads(module, n, parallels)
                thread_spread.spread_workers(module, parallels)


@register_pass("mo-prefetch-weights", "software prefetch of the next quantized weight rows "
               "in the decode qmatmul loops")
def prefetch_weights(module: ir.Module) -> None:
    from max.compiler.pipelines.prefetch import prefetch_weights as run

    with module.context:
        run(module)


@register_pass("mo-streaming-stores", "non-temporal stores into large outputs that nothing "
               "reads back (no read-for-ownership traffic)")
def streaming_stores(module: ir.Module) -> None:
    from max.compiler.pipelines.streaming_stores import mark

    with module.context:
        mark(module)


@register_pass("mo-split-masked-transfers", "masked vector transfers as register-wide ones, "
               "each skipped when its mask is empty (AVX2 hosts: see masked_chunks)")
def split_masked_transfers(module: ir.Module) -> None:
    from max.compiler.pipelines import masked_chunks

    if not masked_chunks.applies():
        return
    with module.context, ir.Location.unknown():
        # One-dimensional transfers first (what mo-lower-to-llvm would do next anyway).
        _run(module, "func.func(convert-vector-to-scf{full-unroll=true})")
        masked_chunks.split_masked_transfers(module)


@register_pass("mo-lower-to-llvm", "loops, vectors, memrefs, math, OpenMP -> LLVM dialect, "
               "checked (nothing unconverted may remain)")
def lower_to_llvm(module: ir.Module) -> None:
    from max.compiler.pipelines import cpu, cpu_threads

    with module.context:
        omp = _has_op_prefix(module, "omp.")
        _run(module, cpu_threads.LOWER_TO_LLVM_OMP if omp else cpu.LOWER_TO_LLVM)
        if not module.operation.verify() or _has_op_prefix(module,
                                                          "builtin.unrealized_conversion_cast"):
            raise CompilationError("the module did not lower to the LLVM dialect")


def _has_op_prefix(module: ir.Module, prefix: str) -> bool:
    """Whether any op's name starts with ``prefix`` (a walk: constants may be huge to print)."""
    found = False

    def visit(op: ir.Operation) -> ir.WalkResult:
        nonlocal found
        found = op.name.startswith(prefix)
        return ir.WalkResult.INTERRUPT if found else ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return found


def schedule_debug() -> bool:
    """``MAX_SCHEDULE_DEBUG=1``: a schedule failure raises instead of falling back."""
    return bool(os.environ.get("MAX_SCHEDULE_DEBUG"))


__all__ = ["FALLBACKS_ATTR", "fallbacks", "plain_kernels", "set_fallbacks"]
