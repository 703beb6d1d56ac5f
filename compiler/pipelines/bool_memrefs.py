"""Memrefs of ``i1`` become memrefs of ``i8`` (after the dealloc pipeline).

MemRefToLLVM of this MLIR build aborts on a store into ``memref<?xi1>`` (an assertion that
the element is at least 8 bits wide). Our own lowering stores bools as ``i8``, but the
deallocation pipeline makes ``i1`` memrefs itself: where one ``bufferization.dealloc`` frees
several buffers that may alias (a cond whose branches yield an allocation of their own or a
value from before the op), its lowering allocates ``memref<Nxi1>`` ownership flags and
calls a generated ``dealloc_helper`` that loads and stores them. So the compiler aborted on
such graphs. Here every such memref holds ``i8`` instead: a store widens its ``i1`` value
(``extui``), a load narrows what it read (``trunci``), and allocations, casts, deallocations,
calls and function signatures only change type. Any other op on an ``i1`` memref is a
``CompilationError`` (never an abort).
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith

from max.compiler.passes.ir_util import as_op
from max.compiler.passes.registry import CompilationError

# Ops that only carry a memref along: their i1 memref types become i8 as they are.
_RETYPED = frozenset({"memref.alloc", "memref.alloca", "memref.cast", "memref.dealloc",
                      "memref.dim", "func.call", "func.return"})


def _is_bool_memref(t: ir.Type) -> bool:
    return (isinstance(t, ir.MemRefType) and isinstance(ir.MemRefType(t).element_type,
                                                         ir.IntegerType)
            and ir.IntegerType(ir.MemRefType(t).element_type).width == 1)


def _widened(t: ir.Type) -> ir.Type:
    if not _is_bool_memref(t):
        return t
    m = ir.MemRefType(t)
    return ir.MemRefType.get(list(m.shape), ir.IntegerType.get_signless(8), m.layout,
                             m.memory_space)


def widen_bool_memrefs(module: ir.Module) -> int:
    """Rewrites every ``i1`` memref of ``module`` as an ``i8`` one; returns how many values
    changed type."""
    if not any(_has_bool_memref_argument(op) for op in module.body.operations):
        return 0
    i1, i8 = ir.IntegerType.get_signless(1), ir.IntegerType.get_signless(8)
    changed = 0
    ops: list[ir.Operation] = []
    module.operation.walk(lambda op: ops.append(as_op(op) or op) or ir.WalkResult.ADVANCE)
    # Chosen before any type changes: a store into a retyped allocation still needs its extui.
    touched = [op for op in ops if op.name == "func.func" or any(
        _is_bool_memref(v.type) for v in list(op.operands) + list(op.results))]
    for op in touched:
        if op.name == "func.func":
            changed += _retype_function(op)
            continue
        if op.name == "memref.store":
            with ir.InsertionPoint(op), op.location:
                op.operands[0] = arith.extui(i8, op.operands[0])
        elif op.name == "memref.load":
            result = op.results[0]
            result.set_type(i8)
            with ir.InsertionPoint.after(op), op.location:
                narrow = arith.trunci(i1, result)
            for use in list(result.uses):
                owner = as_op(use.owner)
                if owner is not None and owner != as_op(narrow.owner):
                    owner.operands[use.operand_number] = narrow
            changed += 1
            continue
        elif op.name not in _RETYPED:
            raise CompilationError(f"{op.name} on a memref of i1 at {op.location}: the CPU "
                                   "lowering stores bools as i8 (mo-widen-bool-memrefs)")
        for r in op.results:
            if _is_bool_memref(r.type):
                r.set_type(_widened(r.type))
                changed += 1
    return changed


def _has_bool_memref_argument(op: ir.OpView) -> bool:
    """Whether a top-level function takes or returns an ``i1`` memref. Tensors of bool are
    stored as ``i8``, so the only ``i1`` memrefs are the dealloc lowering's ownership flags,
    and every one of them is passed to its ``dealloc_helper``: a module without such a
    signature has none, and is not walked (the walk was 2 % of the encoder block's compile)."""
    if op.operation.name != "func.func":
        return False
    ftype = ir.FunctionType(ir.TypeAttr(op.attributes["function_type"]).value)
    return any(_is_bool_memref(t) for t in list(ftype.inputs) + list(ftype.results))


def _retype_function(fn: ir.Operation) -> int:
    ftype = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
    if not any(_is_bool_memref(t) for t in list(ftype.inputs) + list(ftype.results)):
        return 0
    if len(fn.regions[0].blocks):
        for arg in fn.regions[0].blocks[0].arguments:
            arg.set_type(_widened(arg.type))
    fn.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
        [_widened(t) for t in ftype.inputs], [_widened(t) for t in ftype.results]))
    return 1


__all__ = ["widen_bool_memrefs"]
