"""``mo-outline-kernels``: each kernel of the entry function (and of a subgraph's function,
``lowering/call.py``) in a function of its own, one function for identical kernels.

Compile time, not run time. ``opt`` and ``llc`` work a function at a time, and the entry
function held every kernel: those that run on one thread (layer norms, softmax rows, the
attention reshapes: loops of wide vectors that instruction selection splits up) were 0.46-0.58 s
of opt + llc on the encoder block, as long as all the threaded kernels together. As functions,
the kernels are lowered to LLVM in parallel (the lowering's function passes), and spread over
parallel ``opt``/``llc`` processes (:mod:`llvm_parts`).

And a model repeats itself: MiniLM's six layers are the same kernels on other buffers. Two
kernels whose functions print the same (their symbol aside) are one function, called twice:
MiniLM's 145 kernels are 31 functions, and everything after this pass (lowering, opt, llc)
handles a sixth of the code.

A kernel here is a top-level op of the entry with regions and no results that writes memory
(:func:`profile_kernels.is_kernel`): a loop nest, an ``omp.parallel``, a linalg op. Its free
values become the function's arguments, except constants, which are cloned into it so that loop
bounds and static shapes stay known to LLVM, and masks (vectors of i1), recomputed in it. Run
after ``mo-profile-kernels`` (whose timers bracket the kernels in the entry) and before
``mo-lower-to-llvm``. A call costs a few
nanoseconds; where a module is compiled whole, ``opt`` may inline a kernel back.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import func

from max.compiler.lowering.call import SOURCE_ATTR as SUBGRAPH_ATTR
from max.compiler.passes.ir_util import as_op
from max.compiler.passes.profile_kernels import is_kernel
from max.compiler.passes.registry import register_pass

# Ops without operands or effects that are copied into the function rather than passed in.
_CLONED = frozenset({"arith.constant", "llvm.mlir.constant", "ub.poison", "llvm.mlir.zero",
                     "llvm.mlir.poison", "llvm.mlir.undef", "memref.get_global",
                     "llvm.mlir.addressof", "vector.constant_mask"})
# Masks (vectors of i1) are never arguments: recomputed in the function from their operands.
# A mask passed to a kernel came out wrong in it (x @ y + b with a masked ragged corner on
# two threads: the last row of each thread's share).
_MASKS = frozenset({"vector.create_mask"})
SUFFIX = "__k"


def _entries(module: ir.Module) -> list[ir.Operation]:
    """The entry functions and the functions of subgraphs (``lowering/call.py``)."""
    return [op.operation for op in module.body.operations
            if op.operation.name == "func.func" and len(op.operation.regions[0].blocks)
            and ("mo.num_inputs" in op.operation.attributes
                 or SUBGRAPH_ATTR in op.operation.attributes)]


def _outlinable(op: ir.Operation) -> bool:
    return len(op.regions) > 0 and len(op.results) == 0 and is_kernel(op)


def _uses(op: ir.Operation) -> tuple[list[tuple[ir.Operation, int, ir.Value]], list[ir.Value]]:
    """Every operand slot of ``op`` and the ops in it, and the values used there but defined
    outside ``op`` (in order of first use)."""
    slots: list[tuple[ir.Operation, int, ir.Value]] = []
    inside: set[ir.Value] = set()

    def visit(o: ir.Operation) -> ir.WalkResult:
        slots.extend((o, i, v) for i, v in enumerate(o.operands))
        inside.update(o.results)
        for region in o.regions:
            for block in region.blocks:
                inside.update(block.arguments)
        return ir.WalkResult.ADVANCE

    op.walk(visit)
    free = dict.fromkeys(v for _, _, v in slots if v not in inside)
    return slots, list(free)


def outline_kernel(op: ir.Operation, name: str, where: ir.InsertionPoint
                   ) -> tuple[ir.Operation, ir.Operation]:
    """Moves ``op`` into a new private ``func.func @name`` (created at ``where``) and leaves
    a call in its place; returns the function and the call."""
    slots, free = _uses(op)
    masks = [v for v in free if (d := as_op(v.owner)) is not None and d.name in _MASKS]
    free += [m for v in masks for m in as_op(v.owner).operands if m not in free]
    cloned = [v for v in free if (d := as_op(v.owner)) is not None and d.name in _CLONED]
    passed = [v for v in free if v not in cloned and v not in masks]
    with op.context, op.location:
        with where:
            fn = func.FuncOp(name, ([v.type for v in passed], []), visibility="private")
            # Internal in LLVM too (func-to-llvm reads this, not the symbol's visibility):
            # not exported from the shared object.
            fn.attributes["llvm.linkage"] = ir.Attribute.parse("#llvm.linkage<internal>")
        body = fn.add_entry_block()
        mapping: dict[ir.Value, ir.Value] = dict(zip(passed, body.arguments, strict=True))
        with ir.InsertionPoint(body):
            for v in cloned:
                mapping[v] = as_op(v.owner).clone().results[0]
            for v in masks:
                mask = as_op(v.owner).clone()
                for i, operand in enumerate(mask.operands):
                    mask.operands[i] = mapping[operand]
                mapping[v] = mask.results[0]
        with ir.InsertionPoint(op):
            call = func.CallOp([], ir.FlatSymbolRefAttr.get(name), passed)
        with ir.InsertionPoint(body):
            ret = func.ReturnOp([])
        op.move_before(ret.operation)
        for o, i, v in slots:
            image = mapping.get(v)
            if image is not None:
                o.operands[i] = image
    return fn.operation, call.operation


def _code(fn: ir.Operation, name: str) -> str:
    """The function's text without its name: equal for kernels that do the same work."""
    # assume_verified: printing an op otherwise verifies the whole module around it.
    text = fn.get_asm(assume_verified=True, use_local_scope=True)
    return text.replace(f"@{name}(", "@(", 1)


@register_pass("mo-outline-kernels", "each kernel of the entry function into a private "
               "function, one for identical kernels (lowered and compiled in parallel)")
def outline_kernels(module: ir.Module) -> None:
    taken = {ir.StringAttr(op.operation.attributes["sym_name"]).value
             for op in module.body.operations if "sym_name" in op.operation.attributes}
    for entry in _entries(module):
        base = ir.StringAttr(entry.attributes["sym_name"]).value + SUFFIX
        kernels = [op.operation for op in entry.regions[0].blocks[0].operations
                   if _outlinable(op.operation)]
        last = entry
        first_of: dict[str, str] = {}  # code -> the function that has it
        for index, kernel in enumerate(kernels):
            name = f"{base}{index}"
            while name in taken:
                name += "_"
            fn, call = outline_kernel(kernel, name, ir.InsertionPoint.after(last))
            first = first_of.setdefault(_code(fn, name), name)
            if first == name:
                taken.add(name)
                last = fn
            else:
                call.attributes["callee"] = ir.FlatSymbolRefAttr.get(first)
                fn.erase()


__all__ = ["outline_kernel", "outline_kernels"]
