"""The AMD back end of the GPU pipeline: ROCDL -> LLVM IR -> HSACO, offline.

Our LLVM has no AMDGPU backend (``gpu-module-to-binary`` cannot make an object for a
``#rocdl.target``), so each converted ``gpu.module`` is translated to LLVM IR here and handed
to Debian's LLVM 19 tools: ``llc-19`` compiles it to an amdgcn object, ``ld.lld-19 -shared``
links that into a code object (HSACO), which replaces the ``gpu.module`` as a ``gpu.binary``
just as ``gpu-module-to-binary`` would have. The registered passes of this route are in
``stages.py``; everything that touches the tools is in this file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from mlir import ir
from mlir.dialects import arith

from max.compiler.passes.registry import CompilationError, pass_manager

# CDNA parts (wave64) the pipeline is tuned for: gfx942 (MI300X/MI300A), gfx90a (MI200).
ARCHS = ("gfx942", "gfx90a")
TRIPLE = "amdgcn-amd-amdhsa"
LLC = "llc-19"
LD_LLD = "ld.lld-19"
TOOL_TIMEOUT_S = 300

# LLVM 22 attribute words that LLVM 19's IR parser does not know (it rejects the whole
# attribute group); they only permit optimizations, so dropping them keeps the meaning.
NEWER_ATTRIBUTES = (" nocreateundeforpoison",)

# Inside each gpu.module: math ops the ROCDL conversion would turn into __ocml_* calls
# (device library functions, which this route does not link) become LLVM intrinsics that
# the AMDGPU backend lowers itself (exp, sqrt, fma...); f32 erf, tanh, log and log1p became
# the CPU target's polynomials before (:func:`expand_math`).
TO_ROCDL = ("gpu.module(convert-scf-to-cf,math-expand-ops,convert-math-to-llvm,"
            "convert-gpu-to-rocdl{{chipset={arch} runtime=HIP}},"
            "canonicalize,cse,reconcile-unrealized-casts)")


class ToolchainError(CompilationError):
    """The offline code-object tools are missing or failed (no plain-loops rerun helps)."""


def check_arch(arch: str, where: str) -> None:
    """Raises CompilationError unless ``arch`` is one of :data:`ARCHS`."""
    if arch not in ARCHS:
        raise CompilationError(f"{where}: unsupported AMD arch {arch!r} "
                               f"(supported: {', '.join(ARCHS)})")


def attach_target(module: ir.Module, arch: str) -> None:
    """``rocdl-attach-target`` for ``arch`` at optimization level 3."""
    check_arch(arch, "mo-rocdl-attach")
    with module.context:
        pass_manager(f"rocdl-attach-target{{chip={arch} O=3}}").run(module.operation)


def expand_math(module: ir.Module) -> int:
    """Replaces the f32 ``math.erf``, ``tanh``, ``log``, ``log1p``, ``acos`` of every ``gpu.module``
    with the polynomials of ``compiler/pipelines/fast_math.py``; returns how many."""
    from max.compiler.pipelines.fast_math import APPROXIMATIONS

    found: list[ir.Operation] = []

    def collect(op: ir.Operation) -> ir.WalkResult:
        if op.name in APPROXIMATIONS and isinstance(op.results[0].type, ir.F32Type):
            found.append(op)
        return ir.WalkResult.ADVANCE

    for gm in gpu_modules(module):
        gm.walk(collect)
    with module.context:
        for op in found:
            with ir.InsertionPoint(op), op.location:
                new = APPROXIMATIONS[op.name](op.operands[0])
            op.results[0].replace_all_uses_with(new)
            op.erase()
    return len(found)


# gpu op -> the gpu.func attribute that knows its value (set by outlining constant launches).
KNOWN_SIZES = {"gpu.block_dim": "known_block_size", "gpu.grid_dim": "known_grid_size"}


def fold_known_sizes(module: ir.Module) -> int:
    """Replaces ``gpu.block_dim`` / ``gpu.grid_dim`` in every kernel with the constants its
    ``known_block_size`` / ``known_grid_size`` say; returns how many.

    ROCDL would read them through ``__ockl_get_local_size`` / ``__ockl_get_num_groups``,
    device-library functions this route does not link (and a constant step is cheaper).
    """
    found: list[tuple[ir.Operation, int]] = []

    def collect(op: ir.Operation) -> ir.WalkResult:
        attr = KNOWN_SIZES.get(op.name)
        if attr is None:
            return ir.WalkResult.ADVANCE
        fn = op.parent
        while fn is not None and fn.name != "gpu.func":
            fn = fn.parent
        if fn is not None and attr in fn.attributes:
            sizes = list(ir.DenseI32ArrayAttr(fn.attributes[attr]))
            dim = str(op.attributes["dimension"]).split()[-1].rstrip(">")
            found.append((op, sizes["xyz".index(dim)]))
        return ir.WalkResult.ADVANCE

    for gm in gpu_modules(module):
        gm.walk(collect)
    with module.context:
        for op, size in found:
            with ir.InsertionPoint(op), op.location:
                const = arith.ConstantOp(ir.IndexType.get(), size)
            op.results[0].replace_all_uses_with(const.result)
            op.erase()
    return len(found)


def convert_to_rocdl(module: ir.Module, arch: str) -> None:
    """The kernels of every ``gpu.module`` -> the LLVM dialect with ROCDL intrinsics."""
    check_arch(arch, "mo-convert-gpu-to-rocdl")
    fold_known_sizes(module)
    expand_math(module)
    with module.context:
        pass_manager(TO_ROCDL.format(arch=arch)).run(module.operation)


def gpu_modules(module: ir.Module) -> list[ir.Operation]:
    """The module's ``gpu.module`` ops, in order."""
    return [op.operation for op in module.body.operations
            if op.operation.name == "gpu.module"]


def llvm_ir(gpu_module: ir.Operation) -> str:
    """The LLVM IR of one converted ``gpu.module`` (its kernels are ``amdgpu_kernel``s).

    The whole module would not translate while any ``gpu.module`` is left, so the body is
    cloned into a plain module with the data layout the conversion set and the amdgcn triple.
    """
    from mlir._mlir_libs._mlirDialectsLLVM import translate_module_to_llvmir

    with gpu_module.context, ir.Location.unknown():
        plain = ir.Module.create()
        if "llvm.data_layout" in gpu_module.attributes:
            plain.operation.attributes["llvm.data_layout"] = \
                gpu_module.attributes["llvm.data_layout"]
        plain.operation.attributes["llvm.target_triple"] = ir.StringAttr.get(TRIPLE)
        with ir.InsertionPoint(plain.body):
            for op in gpu_module.regions[0].blocks[0].operations:
                if op.operation.name != "gpu.module_end":
                    op.operation.clone()
        # (Not erased: the Python module object owns it and frees it.)
        return str(translate_module_to_llvmir(plain.operation))


def for_llvm19(text: str) -> str:
    """``text`` without the attribute words :data:`NEWER_ATTRIBUTES` that llc-19 rejects."""
    for word in NEWER_ATTRIBUTES:
        text = text.replace(word, "")
    return text


def external_functions(ir_text: str) -> list[str]:
    """The functions LLVM IR declares but does not define, LLVM intrinsics aside: each would
    be an unresolved symbol of the code object."""
    names = []
    for line in ir_text.splitlines():
        if line.startswith("declare "):
            name = line.split("@", 1)[1].split("(", 1)[0]
            if not name.startswith("llvm."):
                names.append(name)
    return names


def find_tool(tool: str, arch: str) -> str:
    """The path of ``tool`` (a path, or a name looked up on PATH).

    Raises:
        CompilationError: it is not there, naming it and what it was needed for.
    """
    path = tool if os.sep in tool else shutil.which(tool)
    if path is None or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise ToolchainError(
            f"the AMD target needs {tool!r} (LLVM 19) to compile {arch} code objects, and it "
            "was not found (Debian: apt-get install llvm-19 lld-19; ./dev setup installs them)")
    return path


def _run(argv: list[str], tool: str, arch: str) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise ToolchainError(f"{tool} timed out after {TOOL_TIMEOUT_S} s compiling for "
                             f"{arch}") from e
    if proc.returncode:
        detail = (proc.stderr or proc.stdout).strip()[:2000]
        raise ToolchainError(f"{tool} failed (exit {proc.returncode}) compiling for "
                             f"{arch}: {detail}")


def hsaco(ir_text: str, arch: str, llc: str = LLC, ld_lld: str = LD_LLD) -> bytes:
    """The HSACO (an amdgcn ELF shared object) of LLVM IR ``ir_text`` for ``arch``.

    Raises:
        CompilationError: an unsupported arch, a tool missing, failing or timing out.
    """
    check_arch(arch, "mo-rocdl-to-hsaco")
    missing = external_functions(ir_text)
    if missing:
        raise CompilationError(f"mo-rocdl-to-hsaco: the {arch} kernels call "
                               f"{', '.join(missing)}, which the offline route does not link "
                               "(no ROCm device libraries)")
    llc_path, lld_path = find_tool(llc, arch), find_tool(ld_lld, arch)
    with tempfile.TemporaryDirectory(prefix="max-hsaco-") as tmp:
        src, obj, out = Path(tmp, "k.ll"), Path(tmp, "k.o"), Path(tmp, "k.hsaco")
        src.write_text(for_llvm19(ir_text))
        _run([llc_path, "-O3", f"-mtriple={TRIPLE}", f"-mcpu={arch}", "-filetype=obj",
              str(src), "-o", str(obj)], llc, arch)
        _run([lld_path, "-shared", str(obj), "-o", str(out)], ld_lld, arch)
        return out.read_bytes()


def to_binaries(module: ir.Module, arch: str, llc: str = LLC, ld_lld: str = LD_LLD) -> None:
    """Every converted ``gpu.module`` -> a ``gpu.binary`` of the same name holding its HSACO
    (``#gpu.select_object<0>`` as its offloading handler, which the host translation needs)."""
    from mlir.dialects import gpu

    check_arch(arch, "mo-rocdl-to-hsaco")
    with module.context, ir.Location.unknown():
        target = ir.Attribute.parse(f'#rocdl.target<chip = "{arch}">')
        handler = ir.Attribute.parse("#gpu.select_object<0>")
        for gm in gpu_modules(module):
            # Read what we need before erasing: a handle to a rewritten op is dead.
            name = ir.StringAttr(gm.attributes["sym_name"]).value
            blob = hsaco(llvm_ir(gm), arch, llc, ld_lld)
            obj = gpu.ObjectAttr.get(target, 3, blob)  # 3: CompilationTarget.Binary
            with ir.InsertionPoint(gm):
                gpu.BinaryOp(name, ir.ArrayAttr.get([obj]), offloadingHandler=handler)
            gm.erase()


def binaries_of(module: ir.Module) -> dict[str, bytes]:
    """Each ``gpu.binary`` of a module by name: its (first) object's bytes."""
    from mlir.dialects import gpu

    found = {}
    for op in module.body.operations:
        if op.operation.name == "gpu.binary":
            name = ir.StringAttr(op.operation.attributes["sym_name"]).value
            obj = ir.ArrayAttr(op.operation.attributes["objects"])[0]
            found[name] = gpu.ObjectAttr(obj).object
    return found


__all__ = ["ARCHS", "LD_LLD", "LLC", "TO_ROCDL", "TRIPLE", "ToolchainError", "attach_target",
           "binaries_of", "check_arch", "convert_to_rocdl", "expand_math", "external_functions",
           "find_tool", "fold_known_sizes", "for_llvm19", "gpu_modules", "hsaco", "llvm_ir",
           "to_binaries"]
