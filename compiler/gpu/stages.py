"""The GPU stages of the NVIDIA and AMD targets (``compiler/targets/``), as registered passes.

Each is a thin entry to its implementation in this folder, so that ``max-opt`` replays any
one of them (``--target=nvidia --print-ir-after-all`` shows each stage's result).
"""

from __future__ import annotations

from mlir import ir

from max.compiler.passes.registry import CompilationError, pass_manager, register_pass


@register_pass("mo-gpu-from-elements", "tensor.from_elements (the runtime checks, "
               "shape_to_tensor) as a kernel's output: its device scalars read from the "
               "rank-0 tensors they come from, never stored by the host")
def gpu_from_elements(module: ir.Module) -> None:
    from max.compiler.gpu.from_elements import from_elements_on_device

    with module.context, ir.Location.unknown():
        from_elements_on_device(module)


@register_pass("mo-gpu-schedule", "linalg ops on memrefs -> gpu.launch kernels: elementwise "
               "(grid-stride, 128-bit vectors) and last-axis reductions (a block per row, "
               "warp shuffles, shared memory); the others stay linalg",
               {"block": int, "reduce_block": int, "max_blocks": int, "wave": int,
                "mma": bool})
def gpu_schedule(module: ir.Module, block: int = 256, reduce_block: int = 256,
                 max_blocks: int = 1056, wave: int = 32, mma: bool = False) -> None:
    """``block`` / ``reduce_block``: threads per block of each schedule; ``max_blocks``: the
    elementwise grid's bound (the grid-stride loop covers the rest); ``wave``: lanes per warp
    (NVIDIA: 32) or wavefront (AMD CDNA: 64) that the reductions' shuffles span; ``mma``:
    f16/bf16 matmuls on tensor cores (``mma.sync``, NVIDIA sm_80 and later)."""
    from max.compiler.gpu.schedule import schedule

    if wave not in (32, 64):
        raise CompilationError(f"mo-gpu-schedule: wave={wave} is not 32 or 64")
    for name, value in (("block", block), ("reduce_block", reduce_block)):
        if value < 32 or value > 1024 or value % 32:
            raise CompilationError(f"mo-gpu-schedule: {name}={value} is not a multiple of 32 "
                                   "in [32, 1024]")
    if reduce_block % wave:
        raise CompilationError(f"mo-gpu-schedule: reduce_block={reduce_block} is not a "
                               f"multiple of the wave size {wave}")
    with module.context, ir.Location.unknown():
        schedule(module, block, reduce_block, max(1, max_blocks), wave, mma)


@register_pass("mo-gpu-map-loops", "the linalg ops no GPU schedule took -> plain GPU "
               "loops, a thread per point of the parallel loops (recorded before by "
               "mo-record-fallbacks)", {"block": int, "max_blocks": int})
def gpu_map_loops(module: ir.Module, block: int = 256, max_blocks: int = 1056) -> None:
    from max.compiler.gpu.host import map_loops

    map_loops(module, block, max(1, max_blocks))


@register_pass("mo-gpu-device-buffers", "host memref.alloc -> gpu.alloc (device memory), "
               "freed before the return")
def gpu_device_buffers(module: ir.Module) -> None:
    from max.compiler.gpu.host import device_buffers

    device_buffers(module)


@register_pass("mo-gpu-check-host", "refuse (CompilationError) any host op but launches, "
               "allocations, views and index arithmetic", {"target": str})
def gpu_check_host(module: ir.Module, target: str = "nvidia") -> None:
    """``target``: the name the error gives."""
    from max.compiler.gpu.host import check_host

    check_host(module, target)


@register_pass("mo-gpu-sink-constants", "copy the host constants each gpu.launch uses into "
               "it (before outlining: kernels see them as constants, not parameters)")
def gpu_sink_constants(module: ir.Module) -> None:
    from max.compiler.gpu.host import sink_constants

    sink_constants(module)


@register_pass("mo-gpu-merge-modules", "every outlined kernel into one gpu.module (one PTX "
               "file per graph)")
def gpu_merge_modules(module: ir.Module) -> None:
    from max.compiler.gpu.merge import merge_gpu_modules

    merge_gpu_modules(module)


@register_pass("mo-gpu-align-shared", "16-byte alignment for every workgroup (shared) "
               "buffer of the outlined kernels (128-bit shared loads)")
def gpu_align_shared(module: ir.Module) -> None:
    from max.compiler.gpu.align import align_workgroup_buffers

    align_workgroup_buffers(module)


@register_pass("mo-nvvm-attach", "nvvm-attach-target with the target's SM arch and PTX "
               "features, optimization level 3", {"arch": str, "features": str})
def nvvm_attach(module: ir.Module, arch: str = "sm_90", features: str = "+ptx80") -> None:
    if not arch.startswith("sm_") or not arch[3:].rstrip("a").isdigit():
        raise CompilationError(f"mo-nvvm-attach: arch {arch!r} is not an SM arch like 'sm_90'")
    with module.context:
        pass_manager(f"nvvm-attach-target{{chip={arch} features={features} O=3}}"
                     ).run(module.operation)


@register_pass("mo-rocdl-attach", "rocdl-attach-target with the target's gfx arch, "
               "optimization level 3", {"arch": str})
def rocdl_attach(module: ir.Module, arch: str = "gfx942") -> None:
    from max.compiler.gpu.rocdl import attach_target

    attach_target(module, arch)


@register_pass("mo-convert-gpu-to-rocdl", "inside each gpu.module: scf -> cf, math -> LLVM "
               "intrinsics (no device-library calls), gpu -> ROCDL for the gfx arch (HIP)",
               {"arch": str})
def convert_gpu_to_rocdl(module: ir.Module, arch: str = "gfx942") -> None:
    from max.compiler.gpu.rocdl import convert_to_rocdl

    convert_to_rocdl(module, arch)


@register_pass("mo-rocdl-to-hsaco", "each converted gpu.module -> LLVM IR -> llc-19 -> "
               "ld.lld-19 -> a gpu.binary holding the HSACO (offline: our LLVM has no AMDGPU "
               "backend)", {"arch": str, "llc": str, "ld_lld": str})
def rocdl_to_hsaco(module: ir.Module, arch: str = "gfx942", llc: str = "llc-19",
                   ld_lld: str = "ld.lld-19") -> None:
    """``llc`` / ``ld_lld``: the tools, by name on PATH or by path."""
    from max.compiler.gpu.rocdl import to_binaries

    to_binaries(module, arch, llc, ld_lld)


__all__: list[str] = []
