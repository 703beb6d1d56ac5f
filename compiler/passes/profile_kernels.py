"""``mo-profile-kernels``: time every kernel of a compiled graph (``MAX_PROFILE_KERNELS``).

Runs on the bufferized module (memrefs, loops, vectors, what is left of linalg), right before
the final lowering to the LLVM dialect. A kernel is a top-level op of the entry function that
writes memory: a loop nest (``scf.for``, ``scf.forall``, ``omp.parallel``...), a linalg op, a
copy or a call. Allocations, views, constants and deallocations are not kernels. Each kernel is
bracketed by two calls, and so is the whole body (timer 0; kernel ``k`` is timer ``k + 1``):

    %t = llvm.call @__mo_prof_now() : () -> i64        // clock_gettime(CLOCK_MONOTONIC) in ns
    <kernel>
    llvm.call @__mo_prof_end(%k, %t) : (i64, i64) -> ()

``__mo_prof_end`` adds the elapsed time to slot ``4k`` of an exported global ``i64`` array,
counts the call in ``4k+1`` and keeps this run's start and duration in ``4k+2`` and ``4k+3``.
The sums grow from load to exit, so a call pays nothing in Python for them; the runtime reads
the array when it prints the table, and the last run's slots after a traced call
(``runtime/kernel_profile.py``; the starts are on the clock of Python's ``time.monotonic_ns``,
so the kernels land inside the ``Model.execute`` span of the trace). Only the entry function
is instrumented: a function it calls is part of the caller's kernel; a top-level op runs once
per call.

Which kernels were scheduled is read here too: a kernel still holding a linalg op (other than
``linalg.yield``/``linalg.index``; ``linalg.copy`` included) becomes plain scalar loops. A
kernel without linalg ops is vector code if it holds vector ops; else it is scalar loops that
the lowering wrote itself (sorts, scatters: not a fallback, but not vector code either). The
kernel table (label, plain, outer op, vector) is left on the module as ``mo.kernel_profile``,
for the worker to put into the artifact record.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, llvm

from max.compiler.passes.ir_util import symbol_names
from max.compiler.passes.registry import CompilationError, register_pass
from max.compiler.pipelines.kernel_names import is_plain_op, kernel_label
from max.runtime.artifact import profile_symbol

PROFILE_ATTR = "mo.kernel_profile"
NOW_FN = "__mo_prof_now"
END_FN = "__mo_prof_end"
SLOTS = 4  # per timer: total ns, calls, last start ns, last duration ns

# Ops inside a region that make it a kernel: it writes memory (or calls code that may).
_WRITES = frozenset({
    "memref.store", "memref.copy", "memref.atomic_rmw", "memref.generic_atomic_rmw",
    "vector.transfer_write", "vector.store", "vector.maskedstore", "vector.scatter",
    "vector.compressstore", "affine.store", "func.call", "llvm.call", "llvm.store",
})
# Top-level ops without regions that are kernels by themselves.
_TOP_KERNELS = frozenset({"memref.copy", "func.call", "vector.transfer_write", "vector.store",
                          "vector.maskedstore", "vector.scatter"})

# The helpers, in the LLVM dialect (the .so links libc: clock_gettime is there). Linux's
# CLOCK_MONOTONIC is 1 and its struct timespec two i64s (x86-64, aarch64).
_HELPERS = """
llvm.mlir.global external @{sym}(dense<0> : tensor<{n}xi64>) {{addr_space = 0 : i32}}
    : !llvm.array<{n} x i64>
llvm.func @clock_gettime(i32, !llvm.ptr) -> i32
llvm.func internal @{now}() -> i64 {{
  %one = llvm.mlir.constant(1 : i64) : i64
  %monotonic = llvm.mlir.constant(1 : i32) : i32
  %ts = llvm.alloca %one x !llvm.struct<(i64, i64)> : (i64) -> !llvm.ptr
  %r = llvm.call @clock_gettime(%monotonic, %ts) : (i32, !llvm.ptr) -> i32
  %s = llvm.load %ts : !llvm.ptr -> i64
  %pns = llvm.getelementptr %ts[0, 1] : (!llvm.ptr) -> !llvm.ptr, !llvm.struct<(i64, i64)>
  %ns = llvm.load %pns : !llvm.ptr -> i64
  %giga = llvm.mlir.constant(1000000000 : i64) : i64
  %s_ns = llvm.mul %s, %giga : i64
  %t = llvm.add %s_ns, %ns : i64
  llvm.return %t : i64
}}
llvm.func internal @{end}(%k: i64, %start: i64) {{
  %now = llvm.call @{now}() : () -> i64
  %dur = llvm.sub %now, %start : i64
  %base = llvm.mlir.addressof @{sym} : !llvm.ptr
  %slots = llvm.mlir.constant({slots} : i64) : i64
  %one = llvm.mlir.constant(1 : i64) : i64
  %i = llvm.mul %k, %slots : i64
  %ptot = llvm.getelementptr %base[%i] : (!llvm.ptr, i64) -> !llvm.ptr, i64
  %pcnt = llvm.getelementptr %ptot[1] : (!llvm.ptr) -> !llvm.ptr, i64
  %pstart = llvm.getelementptr %ptot[2] : (!llvm.ptr) -> !llvm.ptr, i64
  %plast = llvm.getelementptr %ptot[3] : (!llvm.ptr) -> !llvm.ptr, i64
  %tot = llvm.load %ptot : !llvm.ptr -> i64
  %tot2 = llvm.add %tot, %dur : i64
  llvm.store %tot2, %ptot : i64, !llvm.ptr
  %cnt = llvm.load %pcnt : !llvm.ptr -> i64
  %cnt2 = llvm.add %cnt, %one : i64
  llvm.store %cnt2, %pcnt : i64, !llvm.ptr
  llvm.store %start, %pstart : i64, !llvm.ptr
  llvm.store %dur, %plast : i64, !llvm.ptr
  llvm.return
}}
"""


def _walk_names(op: ir.Operation) -> list[str]:
    names: list[str] = []

    def visit(inner: ir.Operation) -> ir.WalkResult:
        names.append(inner.name)
        return ir.WalkResult.ADVANCE

    op.walk(visit)
    return names


def is_kernel(op: ir.Operation) -> bool:
    """Whether a top-level op of a function body does work (writes memory)."""
    name = op.name
    if name.startswith("linalg.") or name in _TOP_KERNELS:
        return True
    if not len(op.regions):
        return False
    return any(n in _WRITES or is_plain_op(n) for n in _walk_names(op))


def is_plain(op: ir.Operation) -> bool:
    """Whether a kernel is left to plain scalar loops: it still holds a linalg op."""
    return any(is_plain_op(n) for n in _walk_names(op))


def is_vector(op: ir.Operation) -> bool:
    """Whether a kernel holds vector ops (what the schedule's vectorization leaves)."""
    return any(n.startswith("vector.") for n in _walk_names(op))


def _entry_functions(module: ir.Module) -> list[ir.Operation]:
    return [op.operation for op in module.body.operations
            if op.operation.name == "func.func" and "mo.num_inputs" in op.operation.attributes]


@register_pass("mo-profile-kernels",
               "time each kernel of the entry function (bufferized module, before LLVM)")
def profile_kernels(module: ir.Module) -> None:
    """Instruments every kernel of the graph's entry function; see the module docstring.

    Raises:
        CompilationError: if the module has no entry function (run ``mo-entry-abi``), more
            than one, or is instrumented already.
    """
    entries = _entry_functions(module)
    if len(entries) != 1:
        raise CompilationError(f"mo-profile-kernels: expected one entry function (after "
                               f"mo-entry-abi), found {len(entries)}")
    fn = entries[0]
    name = ir.StringAttr(fn.attributes["mo.graph_name"]).value
    symbol = profile_symbol(name)
    with module.context, ir.Location.unknown():
        taken = symbol_names(module.body)
        if taken & {symbol, NOW_FN, END_FN}:
            raise CompilationError(f"mo-profile-kernels: graph {name!r} is instrumented already")
        body = fn.regions[0].blocks[0]
        kernels = [op.operation for op in body.operations if is_kernel(op.operation)]
        table = [(kernel_label(k), is_plain(k), k.name, is_vector(k)) for k in kernels]
        i64 = ir.IntegerType.get_signless(64)

        def timer(first: ir.Operation, last: ir.Operation, index: int, after: bool) -> None:
            with ir.InsertionPoint(first), first.location:
                start = llvm.CallOp(i64, [], [], [], callee=NOW_FN).result
            where = ir.InsertionPoint.after(last) if after else ir.InsertionPoint(last)
            with where, last.location:
                llvm.CallOp(None, [arith.constant(i64, index), start], [], [], callee=END_FN)

        ops = list(body.operations)
        timer(ops[0].operation, ops[-1].operation, 0, after=False)  # the body, up to return
        for index, kernel in enumerate(kernels):
            timer(kernel, kernel, index + 1, after=True)
        helpers = ir.Module.parse(_HELPERS.format(sym=symbol, n=SLOTS * (len(kernels) + 1),
                                                  now=NOW_FN, end=END_FN, slots=SLOTS))
        with ir.InsertionPoint(module.body):
            for op in helpers.body.operations:
                op.operation.clone()  # helpers is freed on return
        module.operation.attributes[PROFILE_ATTR] = ir.ArrayAttr.get([
            ir.DictAttr.get({"label": ir.StringAttr.get(label), "plain": ir.BoolAttr.get(plain),
                             "op": ir.StringAttr.get(op_name),
                             "vector": ir.BoolAttr.get(vector)})
            for label, plain, op_name, vector in table])


def kernel_table(module: ir.Module) -> list[tuple[str, bool, str, bool]] | None:
    """The ``(label, plain, op, vector)`` of each instrumented kernel, or None if not
    instrumented."""
    attrs = module.operation.attributes
    if PROFILE_ATTR not in attrs:
        return None
    out = []
    for entry in ir.ArrayAttr(attrs[PROFILE_ATTR]):
        d = ir.DictAttr(entry)
        out.append((ir.StringAttr(d["label"]).value, ir.BoolAttr(d["plain"]).value,
                    ir.StringAttr(d["op"]).value, ir.BoolAttr(d["vector"]).value))
    return out


__all__ = ["PROFILE_ATTR", "SLOTS", "is_kernel", "is_plain", "is_vector", "kernel_table",
           "profile_kernels"]
