"""MO -> linalg/tensor/arith/math lowering: pass ``mo-to-linalg``, one rule per op.

Each ``mo.graph`` function becomes a function of the same name on builtin tensors (symbolic
dims become ``?``, si*/ui* become signless) keeping ``mo.graph``. Runtime checks (gather bounds)
become one extra last result ``tensor<Kxi8>`` and the attribute ``mo.checks = [messages]``.
Subgraph functions (control-flow bodies) are inlined by their ops' rules (``flow.py``) and
then erased. A buffer (``!mo.buffer``) becomes a ``memref``: buffer inputs are memref arguments
that the buffer ops read and write in program order (``lowering/buffers.py``).
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import func

from max.compiler.lowering import (  # noqa: F401  (imports register the rules)
    buffers,
    constant,
    conv,
    custom,
    effects,
    elementwise,
    flow,
    gather,
    gptq,
    indexing,
    matmul,
    nonzero,
    normalization,
    quantization,
    reduction,
    resize,
    sequence,
    shape_ops,
)
from max.compiler.lowering.body import lower_block, mo_type
from max.compiler.lowering.builders import flags_tensor
from max.compiler.lowering.call import outlining, plan_calls
from max.compiler.lowering.context import (
    FunctionLowering,
    LoweringContext,
    builtin_tensor_type,
    builtin_type,
)
from max.compiler.lowering.registry import all_rules
from max.compiler.lowering.weight_layouts import plan_split_weights
from max.compiler.passes.registry import CompilationError, register_pass
from max.compiler.pipelines.cpu import RETURNED_ATTR
from max.runtime.artifact import data_dependent_outputs

__all__ = ["LoweringContext", "all_rules", "lower_to_linalg"]


@register_pass("mo-to-linalg", "lower mo.graph functions to linalg/tensor/arith on builtin tensors",
               {"outline_calls": bool, "outline_bodies": bool})
def lower_to_linalg(module: ir.Module, outline_calls: bool = True,
                    outline_bodies: bool = True) -> None:
    """Rewrites every ``mo.graph`` function of ``module`` in place.

    ``outline_calls``: a subgraph called more than once becomes one function (``call.py``);
    ``outline_bodies``: so do cond branches and loop bodies. False inlines them (targets
    whose pipelines keep one function; calls in a model whose kernels are profiled).
    """
    with module.context, ir.Location.unknown():
        with outlining(plan_calls(module, outline_calls, outline_bodies)):
            for op in list(module.body.operations):
                if op.operation.name == "func.func" and "mo.graph" in op.attributes:
                    plan_split_weights(module, op.operation)
                    _lower_function(op.operation)
        # Subgraphs (cond/while bodies, add_subgraph) were inlined into their callers or
        # lowered into functions of their own (call.py): none is an entry point, and MO types
        # must not reach the rest of the pipeline.
        for op in list(module.body.operations):
            if op.operation.name == "func.func" and _is_subgraph(op.operation):
                op.operation.erase()


def _is_subgraph(fn: ir.Operation) -> bool:
    """An MO function without ``mo.graph`` (its signature or ops are MO)."""
    if "mo.graph" in fn.attributes:
        return False
    if "!mo." in str(ir.TypeAttr(fn.attributes["function_type"]).value):
        return True
    return any(op.operation.name.startswith("mo.")
               for block in fn.regions[0].blocks for op in block.operations)


def _lower_function(old: ir.Operation) -> None:
    name = ir.StringAttr(old.attributes["sym_name"]).value
    ftype = ir.FunctionType(ir.TypeAttr(old.attributes["function_type"]).value)
    region = old.regions[0]
    blocks = list(region.blocks)
    if len(blocks) != 1:
        raise CompilationError(f"graph {name!r}: expected one block, found {len(blocks)}")
    in_mo = [mo_type(t, f"graph {name!r} input {i}", buffers=True)
             for i, t in enumerate(ftype.inputs)]
    out_mo = [mo_type(t, f"graph {name!r} result {i}") for i, t in enumerate(ftype.results)]
    in_types = [builtin_type(t) for t in in_mo]
    out_types = [builtin_tensor_type(t) for t in out_mo]

    with old.location, ir.InsertionPoint(old):
        new = func.FuncOp(name, (in_types, out_types))
    for attr_name in list(old.attributes):
        if attr_name not in ("sym_name", "function_type"):
            new.attributes[attr_name] = old.attributes[attr_name]
    entry = new.add_entry_block()
    state = FunctionLowering(name, list(entry.arguments), in_mo)
    values: dict[ir.Value, ir.Value] = dict(zip(blocks[0].arguments, entry.arguments))

    with ir.InsertionPoint(entry):
        returned = lower_block(blocks[0], values, state, f"graph {name!r}")
        with blocks[0].operations[len(blocks[0].operations) - 1].location:
            _emit_return(new, state, returned, out_types)
    dynamic = data_dependent_outputs([t.dims for t in in_mo], [t.dims for t in out_mo])
    if dynamic:  # sizes only the data determines: the entry ABI returns these (cpu.py)
        new.attributes[RETURNED_ATTR] = ir.DenseI64ArrayAttr.get(list(dynamic))
    old.erase()


def _emit_return(new: func.FuncOp, state: FunctionLowering, results: list[ir.Value],
                 out_types: list[ir.Type]) -> None:
    if state.checks:
        flags = flags_tensor(state.checks)
        results = results + [flags]
        out_types = out_types + [flags.type]
        new.attributes["mo.checks"] = ir.ArrayAttr.get(
            [ir.StringAttr.get(m) for _, m in state.checks])
    func.ReturnOp(results)
    new.attributes["function_type"] = ir.TypeAttr.get(
        ir.FunctionType.get([a.type for a in new.entry_block.arguments], out_types))
