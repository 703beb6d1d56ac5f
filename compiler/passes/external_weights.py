"""``mo-external-weights``: each named ``mo.constant_external`` becomes a graph argument.

A weight given by name (``ops.constant_external``) is not in the graph: the engine supplies
it when the model is loaded (``weights_registry``). The compile worker turns all ops of one
name into one trailing argument of the graph function, after the user's inputs and before
the externalized constants, and records the names and types (``ArtifactRecord.weights``).
Two ops of one name with different types cannot be one weight: a ``CompilationError``.
"""

from __future__ import annotations

from mlir import ir

from max.compiler.passes.externalize import _graph_functions, _sync_signature
from max.compiler.passes.registry import CompilationError, register_pass


def bind_external_weights(module: ir.Module) -> list[tuple[str, ir.Type]]:
    """Replaces every ``mo.constant_external`` by an argument; returns (name, type) of each
    new argument, in order."""
    weights: list[tuple[str, ir.Type]] = []
    with module.context, ir.Location.unknown():
        for fn in _graph_functions(module):
            block = fn.regions[0].blocks[0]
            args: dict[str, ir.Value] = {}
            for op in [o.operation for o in block.operations]:
                if op.name != "mo.constant_external":
                    continue
                name = ir.StringAttr(op.attributes["name"]).value
                t = op.results[0].type
                if name not in args:
                    args[name] = block.add_argument(t, ir.Location.unknown())
                    weights.append((name, t))
                elif args[name].type != t:
                    raise CompilationError(f"external constant {name!r} is declared as "
                                           f"{args[name].type} and as {t}: one name is one "
                                           "weight")
                op.results[0].replace_all_uses_with(args[name])
                op.erase()
            _sync_signature(fn, block)
    return weights


@register_pass("mo-external-weights",
               "turn mo.constant_external ops into graph arguments (one per name)")
def _external_weights_pass(module: ir.Module) -> None:
    bind_external_weights(module)
