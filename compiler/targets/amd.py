"""The AMD target: MO lowered to linalg on tensors -> kernels in one ``gpu.binary`` holding an
HSACO (an amdgcn code object), host side in the LLVM dialect.

Read top to bottom, this is the pipeline. Up to the outlined, merged ``gpu.module`` it is the
NVIDIA target's, stage for stage (``compiler/gpu/`` writes its schedules on the gpu dialect),
but with a wavefront of 64 lanes for the reductions' shuffles. Then ROCDL instead of NVVM,
and, since our LLVM has no AMDGPU backend, an offline code object: ``mo-rocdl-to-hsaco``
translates the kernels to LLVM IR and runs Debian's ``llc-19`` and ``ld.lld-19`` on it
(``compiler/gpu/rocdl.py``). Nothing of this has run on AMD hardware.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlir import ir

from max.compiler.gpu import rocdl
from max.compiler.gpu import stages as _gpu_stages  # noqa: F401  (registers the GPU passes)
from max.compiler.passes.registry import CompilationError, register_pass
from max.compiler.pipelines import stages as _stages  # registers the front's passes
from max.compiler.pipelines.cpu import BUFFERIZE_PIPELINE, FUSION_PIPELINE
from max.compiler.targets import Stage, Target
from max.compiler.targets.fallback import lower_with_fallback
from max.compiler.targets.nvidia import ASYNC_HOST, HOST_TO_LLVM, OUTLINE

AMD = Target("amd", (
    Stage("mo-gpu-from-elements"),  # tensors of scalars (the checks) built by kernels
    Stage("mo-entry-abi"),  # destination-passing memref entry, as on the CPU
    Stage("mo-duplicate-widenings"),
    Stage(FUSION_PIPELINE),
    Stage("mo-fold-transposes"),
    Stage("mo-dps-inits"),
    Stage(BUFFERIZE_PIPELINE),
    Stage("mo-copies-to-linalg"),
    Stage("mo-gpu-schedule", ("block", "reduce_block", "max_blocks", "wave"), schedule=True),
    Stage("mo-record-fallbacks"),
    Stage("mo-gpu-map-loops", ("block", "max_blocks")),
    Stage("mo-gpu-device-buffers"),
    Stage("mo-gpu-sink-constants"),
    Stage("mo-gpu-check-host", ("target",)),
    Stage(OUTLINE),
    Stage("mo-gpu-merge-modules"),
    Stage("mo-gpu-align-shared"),
    Stage("mo-rocdl-attach", ("arch",)),
    Stage("mo-convert-gpu-to-rocdl", ("arch",)),
    Stage(ASYNC_HOST),
    Stage(HOST_TO_LLVM),
    Stage("mo-rocdl-to-hsaco", ("arch", "llc", "ld_lld")),
), defaults=(("arch", "gfx942"), ("block", 256), ("reduce_block", 256),
             ("max_blocks", 304 * 8), ("wave", 64), ("target", "amd"),
             ("llc", rocdl.LLC), ("ld_lld", rocdl.LD_LLD)))

# Compute units of the part each arch is tuned for: MI300X (gfx942), MI250X per die (gfx90a).
CU_COUNT = {"gfx942": 304, "gfx90a": 110}
# Local data share (workgroup memory) one workgroup may use on these parts.
LDS_BYTES = {"gfx942": 64 * 1024, "gfx90a": 64 * 1024}
WAVEFRONT = 64  # CDNA runs wave64 only


@dataclass(frozen=True)
class AmdDescription:
    """What the AMD pipeline is compiled for.

    Attributes:
        arch: the gfx architecture (``"gfx942"``: MI300; ``"gfx90a"``: MI200).
        block: threads per block (workgroup) of the elementwise schedule.
        reduce_block: threads per block (one row each) of the reduction schedules, a multiple
            of the 64-lane wavefront.
        blocks_per_cu: resident blocks per compute unit the elementwise grid is sized for
            (its grid-stride loop covers any larger size).
        llc: the LLVM 19 ``llc`` (a name on PATH or a path).
        ld_lld: the LLVM 19 ``ld.lld`` (a name on PATH or a path).
    """

    arch: str = "gfx942"
    block: int = 256
    reduce_block: int = 256
    blocks_per_cu: int = 8
    llc: str = rocdl.LLC
    ld_lld: str = rocdl.LD_LLD

    def __post_init__(self) -> None:
        if self.arch not in CU_COUNT:
            raise ValueError(f"unsupported AMD arch {self.arch!r} "
                             f"(supported: {', '.join(CU_COUNT)})")
        if self.block < 64 or self.block > 1024 or self.block % 64:
            raise ValueError(f"block={self.block} must be a multiple of 64 in [64, 1024]")
        if self.reduce_block < 64 or self.reduce_block > 1024 or self.reduce_block % 64:
            raise ValueError(f"reduce_block={self.reduce_block} must be a multiple of 64 in "
                             "[64, 1024]")

    @property
    def wavefront(self) -> int:
        """Lanes per wavefront (64 on every CDNA part)."""
        return WAVEFRONT

    @property
    def lds_bytes(self) -> int:
        """Workgroup memory one block may use."""
        return LDS_BYTES[self.arch]

    def options(self) -> dict[str, Any]:
        """The :data:`AMD` run options this description stands for."""
        return {"arch": self.arch, "block": self.block, "reduce_block": self.reduce_block,
                "max_blocks": CU_COUNT[self.arch] * self.blocks_per_cu,
                "wave": self.wavefront, "llc": self.llc, "ld_lld": self.ld_lld}


def lower(module: ir.Module, description: AmdDescription | None = None) -> list[str]:
    """Runs :data:`AMD` on a lowered (linalg) module in place; returns the fallback records
    (as the NVIDIA target's ``lower``: a schedule failure reruns the plain-loops pipeline;
    a missing tool or the host check raises at once, since plain loops would fail alike)."""
    options = (description or AmdDescription()).options()
    return lower_with_fallback(AMD, module, options, fatal=_fatal)


def _fatal(e: Exception) -> bool:
    """Errors the plain pipeline would meet just the same: a missing or failing tool, the host
    check, an unsupported arch."""
    return isinstance(e, rocdl.ToolchainError) or isinstance(e, CompilationError) and (
        "cannot run" in str(e) or "unsupported AMD arch" in str(e))


def _lowered(module: ir.Module | str) -> ir.Module:
    """A copy of an MO module (or its text), lowered to linalg, in the current context."""
    from max.compiler.lowering import lower_to_linalg

    m = ir.Module.parse(str(module))
    lower_to_linalg(m)
    return m


def compile_hsaco(module: ir.Module | str, arch: str = "gfx942", *,
                  description: AmdDescription | None = None,
                  fallbacks: list[str] | None = None) -> bytes:
    """The HSACO (amdgcn ELF code object, every kernel in it) of an MO module
    (``Graph._module`` or its text) for an AMD ``arch``.

    The module is copied (the caller's is left as it was), lowered to linalg and run through
    :data:`AMD`. ``description``, when given, replaces ``arch``. ``fallbacks``: a list that
    receives the fallback records.

    Raises:
        ValueError: an unsupported ``arch``.
        CompilationError: something the target cannot compile, or ``llc-19`` / ``ld.lld-19``
            missing or failing.
    """
    from max.dialects.mo import make_context

    description = description or AmdDescription(arch=arch)
    with make_context(), ir.Location.unknown():
        m = _lowered(module)
        records = lower(m, description)
        if fallbacks is not None:
            fallbacks.extend(records)
        binaries = rocdl.binaries_of(m)
        if len(binaries) != 1:
            raise CompilationError(f"expected one gpu.binary, found {len(binaries)}")
        return next(iter(binaries.values()))


def amdgcn_llvm_ir(module: ir.Module | str, arch: str = "gfx942") -> str:
    """The LLVM IR (amdgcn, as handed to ``llc-19``) of an MO module's kernels for ``arch``:
    the :data:`AMD` pipeline up to ``mo-convert-gpu-to-rocdl``, then the translation."""
    from max.dialects.mo import make_context

    description = AmdDescription(arch=arch)
    with make_context(), ir.Location.unknown():
        m = _lowered(module)
        AMD.run(m, until="mo-convert-gpu-to-rocdl", **description.options())
        modules = rocdl.gpu_modules(m)
        if len(modules) != 1:
            raise CompilationError(f"expected one gpu.module, found {len(modules)}")
        return rocdl.for_llvm19(rocdl.llvm_ir(modules[0]))


@register_pass("mo-lower-amd", "the whole AMD pipeline (compiler/targets/amd.py), with the "
               "plain-loops fallback: lowered MO -> gpu.binary (HSACO) + LLVM host",
               {"arch": str})
def lower_amd(module: ir.Module, arch: str = "gfx942") -> None:
    records = lower(module, AmdDescription(arch=arch))
    _stages.set_fallbacks(module, records)


__all__ = ["AMD", "AmdDescription", "amdgcn_llvm_ir", "compile_hsaco", "lower"]
