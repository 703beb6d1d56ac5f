"""The CPU target: MO lowered to linalg on tensors -> a module in the LLVM dialect.

Read top to bottom, this is the pipeline. Fusion, then the schedule (tiling and vectorization,
``cpu_schedule``) around bufferization; what the schedule leaves as linalg becomes plain loops
and is recorded (``mo-record-fallbacks``). :func:`lower` runs it, and falls back to the
plain-loops pipeline (the ``schedule=True`` stages left out) when any schedule stage fails,
recording that too.
"""

from __future__ import annotations

from mlir import ir

from max.compiler.passes.registry import CompilationError, register_pass
from max.compiler.pipelines import outline_kernels as _outline  # noqa: F401 (registers)
from max.compiler.pipelines import stages as _stages  # registers the stage passes
from max.compiler.pipelines.cpu import BUFFERIZE_PIPELINE, DEALLOC_PIPELINE, FUSION_PIPELINE
from max.compiler.targets import Stage, Target
from max.compiler.targets.fallback import lower_with_fallback

CPU = Target("cpu", (
    Stage("mo-entry-abi"),  # destination-passing memref entry (skips wrapped graphs)
    Stage("mo-duplicate-widenings"),  # f16/bf16 inputs widened inside each consumer
    Stage(FUSION_PIPELINE),
    Stage("mo-fold-transposes"),  # permuted reads in place, before the schedule classifies
    Stage("mo-dps-inits"),  # before eliminate-empty-tensors: see dps_inits
    Stage("mo-output-views"),  # an output that is a reshape: written in place, not copied
    Stage("mo-schedule-tensors", ("threads",), schedule=True),
    # The tiled loops' tensor.dim of iter_args and min/max of their IVs folded: the slice
    # comparisons of bufferization's analysis then build smaller Presburger systems (MiniLM's
    # bufferization 8-15% faster, every benchmark graph's LLVM IR unchanged).
    Stage("func.func(scf-for-loop-canonicalization)", schedule=True),
    Stage(BUFFERIZE_PIPELINE),
    Stage("mo-prefetch-weights", schedule=True),  # the decode qmatmul's weight rows
    Stage("mo-vectorize-memrefs", schedule=True),
    Stage(DEALLOC_PIPELINE),
    Stage("mo-widen-bool-memrefs"),  # the dealloc helper's i1 flags: i1 stores abort LLVM
    # After vectorization (vector polynomials) and dealloc (LLVM intrinsics, which declare no
    # memory effects: ldexp).
    Stage("mo-fast-math", schedule=True),
    Stage("mo-nibble-lookup", schedule=True),  # after dealloc: an intrinsic without effects
    Stage("mo-copies-to-linalg"),
    Stage("mo-parallel-copies", ("threads",), schedule=True),
    Stage("mo-vectorize-copies", schedule=True),
    Stage("mo-deinterleave-strided-reads", schedule=True),  # x[:, ::2]: no per-lane loads
    Stage("mo-record-fallbacks"),
    # After dealloc + canonicalize: constants inside omp.wsloop fail its verifier (MLIR-FACTS).
    Stage("mo-forall-to-openmp", ("threads",), schedule=True),
    Stage("mo-streaming-stores", schedule=True),
    Stage("mo-profile-kernels", when="profile"),  # each top-level op of the entry: a kernel
    Stage("mo-outline-kernels"),  # serial kernels as functions: opt/llc split over processes
    Stage("mo-split-masked-transfers", schedule=True),  # AVX2: no empty vmaskmovps
    Stage("mo-lower-to-llvm"),
), defaults=(("threads", 0), ("profile", False)))

def lower(module: ir.Module, *, schedule: bool = True, threads: int | None = None,
          profile: bool = False) -> list[str]:
    """Runs :data:`CPU` on ``module`` in place; returns the fallback records.

    A record names a kernel left to plain loops (``"relu+add (linalg.generic)"``), or, first,
    ``"whole module: REASON"`` when a schedule stage failed and the plain pipeline ran instead
    (``MAX_SCHEDULE_DEBUG=1`` raises then). ``threads``: None or 0 = as many as the CPUs.
    """
    options = {"threads": threads or 0, "profile": profile}
    return lower_with_fallback(CPU, module, options, schedule=schedule)


@register_pass("mo-lower-cpu", "the whole CPU pipeline (compiler/targets/cpu.py), with the "
               "plain-loops fallback: lowered MO -> LLVM dialect", {"threads": int})
def lower_cpu(module: ir.Module, threads: int = 0) -> None:
    records = lower(module, threads=threads)
    _stages.set_fallbacks(module, records)  # kept on the module for the reader


__all__ = ["CPU", "CompilationError", "lower"]
