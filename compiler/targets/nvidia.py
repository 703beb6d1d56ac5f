"""The NVIDIA target: MO lowered to linalg on tensors -> kernels in one ``gpu.binary`` of PTX,
host side in the LLVM dialect.

Read top to bottom, this is the pipeline. The front (entry ABI, fusion, bufferization) is the
CPU target's, by the same stage names; then ``mo-gpu-schedule`` turns the linalg ops it knows
into kernels (``compiler/gpu/``), what it leaves is recorded (``mo-record-fallbacks``) and
mapped to plain GPU loops, intermediate buffers move to device memory, the host is checked to
touch no memory itself, the kernels are outlined into one ``gpu.module`` and lowered through
NVVM to PTX (``gpu-module-to-binary{format=isa}``: the driver JITs it at load time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlir import ir

from max.compiler.gpu import stages as _gpu_stages  # noqa: F401  (registers the GPU passes)
from max.compiler.passes.registry import CompilationError, register_pass
from max.compiler.pipelines import stages as _stages  # registers the front's passes
from max.compiler.pipelines.cpu import BUFFERIZE_PIPELINE, FUSION_PIPELINE
from max.compiler.targets import Stage, Target
from max.compiler.targets.fallback import lower_with_fallback

OUTLINE = "gpu-kernel-outlining,expand-strided-metadata,lower-affine,canonicalize,cse"
TO_NVVM = ("gpu.module(convert-scf-to-cf,convert-nvgpu-to-nvvm,convert-gpu-to-nvvm,"
           "canonicalize,cse,reconcile-unrealized-casts)")
HOST_TO_LLVM = ("convert-scf-to-cf,expand-strided-metadata,finalize-memref-to-llvm,"
                "convert-arith-to-llvm,convert-index-to-llvm,convert-func-to-llvm,"
                "convert-cf-to-llvm,gpu-to-llvm,reconcile-unrealized-casts")
TO_PTX = "gpu-module-to-binary{format=isa}"
# The host's GPU ops on one stream (gpu.alloc must be async for gpu-to-llvm to lower it):
# one stream per call, kernels and frees queued on it, one wait at the end.
ASYNC_HOST = "func.func(gpu-async-region)"

NVIDIA = Target("nvidia", (
    Stage("mo-gpu-from-elements"),  # tensors of scalars (the checks) built by kernels
    Stage("mo-entry-abi"),  # destination-passing memref entry, as on the CPU
    Stage("mo-duplicate-widenings"),
    Stage(FUSION_PIPELINE),
    Stage("mo-fold-transposes"),  # permuted reads in place (the GPU schedules take any map)
    Stage("mo-dps-inits"),
    Stage(BUFFERIZE_PIPELINE),
    Stage("mo-copies-to-linalg"),  # copies become kernels too, never host loops
    Stage("mo-gpu-schedule", ("block", "reduce_block", "max_blocks", "mma"), schedule=True),
    Stage("mo-record-fallbacks"),  # every linalg op still here becomes plain GPU loops
    Stage("mo-gpu-map-loops", ("block", "max_blocks")),
    Stage("mo-gpu-device-buffers"),
    Stage("mo-gpu-sink-constants"),
    Stage("mo-gpu-check-host"),
    Stage(OUTLINE),
    Stage("mo-gpu-merge-modules"),
    Stage("mo-gpu-align-shared"),
    Stage("mo-nvvm-attach", ("arch", "features")),
    Stage(TO_NVVM),
    Stage(ASYNC_HOST),
    Stage(HOST_TO_LLVM),
    Stage(TO_PTX),
), defaults=(("arch", "sm_90"), ("features", "+ptx80"), ("block", 256),
             ("reduce_block", 256), ("max_blocks", 132 * 8), ("mma", True)))

# SMs of the part each arch is tuned for: H100/H200 (sm_90), A100 (sm_80).
SM_COUNT = {"sm_90": 132, "sm_90a": 132, "sm_80": 108}


@dataclass(frozen=True)
class NvidiaDescription:
    """What the NVIDIA pipeline is compiled for.

    Attributes:
        arch: the SM architecture (``"sm_90"``: H100/H200; ``"sm_80"``: A100).
        ptx_features: the PTX ISA version, as LLVM's NVPTX features (``"+ptx80"``: PTX 8.0).
        block: threads per block of the elementwise schedule.
        reduce_block: threads per block (one row each) of the reduction schedule.
        blocks_per_sm: resident blocks per SM the elementwise grid is sized for (its
            grid-stride loop covers any larger size).
    """

    arch: str = "sm_90"
    ptx_features: str = "+ptx80"
    block: int = 256
    reduce_block: int = 256
    blocks_per_sm: int = 8

    def __post_init__(self) -> None:
        if self.arch not in SM_COUNT:
            raise ValueError(f"unsupported NVIDIA arch {self.arch!r} "
                             f"(supported: {', '.join(SM_COUNT)})")
        for name in ("block", "reduce_block"):
            value = getattr(self, name)
            if value < 32 or value > 1024 or value % 32:
                raise ValueError(f"{name}={value} must be a multiple of 32 in [32, 1024]")

    def options(self) -> dict[str, Any]:
        """The :data:`NVIDIA` run options this description stands for."""
        return {"arch": self.arch, "features": self.ptx_features, "block": self.block,
                "reduce_block": self.reduce_block,
                "max_blocks": SM_COUNT[self.arch] * self.blocks_per_sm}


def lower(module: ir.Module, description: NvidiaDescription | None = None) -> list[str]:
    """Runs :data:`NVIDIA` on a lowered (linalg) module in place; returns the fallback records.

    As on the CPU: a record names a kernel left to plain GPU loops; ``"whole module: REASON"``
    comes first when the schedule failed and the plain pipeline ran instead
    (``MAX_SCHEDULE_DEBUG=1`` raises then).
    """
    options = (description or NvidiaDescription()).options()
    # The host check's refusal: plain loops would refuse the module just the same.
    return lower_with_fallback(NVIDIA, module, options, fatal=lambda e: isinstance(
        e, CompilationError) and "cannot run" in str(e))


def ptx_of(module: ir.Module) -> str:
    """The PTX text of the (one, merged) ``gpu.binary`` of a module :func:`lower` ran on."""
    from mlir.dialects import gpu

    texts = []
    for op in module.body.operations:
        if op.operation.name == "gpu.binary":
            for obj in ir.ArrayAttr(op.operation.attributes["objects"]):
                texts.append(gpu.ObjectAttr(obj).object.decode())
    if len(texts) != 1:
        raise CompilationError(f"expected one gpu.binary with one object, found {len(texts)}")
    return texts[0]


def compile_ptx(module: ir.Module | str, arch: str = "sm_90", *,
                description: NvidiaDescription | None = None,
                fallbacks: list[str] | None = None) -> str:
    """The PTX of an MO module (``Graph._module`` or its text) for an NVIDIA ``arch``.

    The module is copied (the caller's is left as it was), lowered to linalg and run through
    :data:`NVIDIA`. ``description``, when given, replaces ``arch``. ``fallbacks``: a list
    that receives the fallback records.

    Raises:
        ValueError: an unsupported ``arch``.
        CompilationError: the module has something the target cannot compile.
    """
    from max.compiler.lowering import lower_to_linalg
    from max.dialects.mo import make_context

    description = description or NvidiaDescription(arch=arch)
    with make_context(), ir.Location.unknown():
        m = ir.Module.parse(str(module))
        lower_to_linalg(m)
        records = lower(m, description)
        if fallbacks is not None:
            fallbacks.extend(records)
        return ptx_of(m)


@register_pass("mo-lower-nvidia", "the whole NVIDIA pipeline (compiler/targets/nvidia.py), "
               "with the plain-loops fallback: lowered MO -> gpu.binary (PTX) + LLVM host",
               {"arch": str})
def lower_nvidia(module: ir.Module, arch: str = "sm_90") -> None:
    records = lower(module, NvidiaDescription(arch=arch))
    _stages.set_fallbacks(module, records)


__all__ = ["NVIDIA", "NvidiaDescription", "compile_ptx", "lower", "ptx_of"]
