"""Moving large constants out of the code: ``mo-externalize-constants``.

A weight embedded in the IR is printed into LLVM IR text, parsed again by ``opt`` and copied into
the ``.so`` (a 784x512 float matrix cost a second of compile time). Instead each large
``mo.constant`` of a graph becomes a trailing argument of the graph function; the compile worker
stores the values beside the binary (``constants.bin``) and the engine passes them with every
call, zero-copy. Small constants stay in the code, where LLVM can fold them.
"""

from __future__ import annotations

import numpy as np
from mlir import ir

from max.compiler.passes.constants import is_splat_array, read_constant
from max.compiler.passes.registry import register_pass

# Constants with fewer elements stay in the code.
MIN_ELEMENTS = 1024


def _graph_functions(module: ir.Module) -> list[ir.Operation]:
    return [op.operation for op in module.body.operations
            if op.operation.name == "func.func" and "mo.graph" in op.operation.attributes]


def externalize_constants(module: ir.Module, min_elements: int = MIN_ELEMENTS) -> list[np.ndarray]:
    """Turns each large non-splat ``mo.constant`` of the graph into a new last argument.

    Returns the constants' values, in the order of the new arguments.
    """
    values: list[np.ndarray] = []
    with module.context, ir.Location.unknown():
        for fn in _graph_functions(module):
            block = fn.regions[0].blocks[0]
            for op in [o.operation for o in block.operations]:
                if op.name != "mo.constant":
                    continue
                array = read_constant(op)
                if array is None or array.size < min_elements or is_splat_array(array):
                    continue
                arg = block.add_argument(op.results[0].type, ir.Location.unknown())
                op.results[0].replace_all_uses_with(arg)
                op.erase()
                values.append(np.ascontiguousarray(array))
            _sync_signature(fn, block)
    return values


def _sync_signature(fn: ir.Operation, block: ir.Block) -> None:
    """Makes the function type (and argument attributes) match the entry block's arguments."""
    old = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
    inputs = [a.type for a in block.arguments]
    if len(inputs) == len(old.inputs):
        return
    fn.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(inputs, old.results))
    if "arg_attrs" in fn.attributes:
        attrs = list(ir.ArrayAttr(fn.attributes["arg_attrs"]))
        attrs += [ir.DictAttr.get({})] * (len(inputs) - len(attrs))
        fn.attributes["arg_attrs"] = ir.ArrayAttr.get(attrs)


@register_pass("mo-externalize-constants",
               f"turn mo.constant ops of >= {MIN_ELEMENTS} elements into graph arguments")
def _externalize_pass(module: ir.Module) -> None:
    externalize_constants(module)
