"""All outlined kernels in one ``gpu.module``: one PTX file (one module to load) per graph.

``gpu-kernel-outlining`` makes a ``gpu.module`` per launch; this moves every kernel into the
first one and points each ``gpu.launch_func`` at it.
"""

from __future__ import annotations

from mlir import ir


def merge_gpu_modules(module: ir.Module) -> None:
    """Moves the ops of every ``gpu.module`` into the first one (in place)."""
    gpu_modules = [op.operation for op in module.body.operations
                   if op.operation.name == "gpu.module"]
    if len(gpu_modules) < 2:
        return
    first = gpu_modules[0]
    first_name = ir.StringAttr(first.attributes["sym_name"]).value
    target_body = first.regions[0].blocks[0]
    seen = {ir.StringAttr(op.operation.attributes["sym_name"]).value
            for op in target_body.operations if "sym_name" in op.operation.attributes}
    renamed: dict[tuple[str, str], str] = {}
    with module.context:
        for other in gpu_modules[1:]:
            other_name = ir.StringAttr(other.attributes["sym_name"]).value
            for op in list(other.regions[0].blocks[0].operations):
                op = op.operation
                if "sym_name" not in op.attributes:
                    continue
                name = ir.StringAttr(op.attributes["sym_name"]).value
                if op.name == "gpu.func":
                    # Outlining names each module uniquely, not the kernels inside: a kernel
                    # takes its module's name.
                    new_name = other_name
                    if new_name in seen:
                        raise ValueError(f"two GPU kernels named {new_name!r}")
                    op.attributes["sym_name"] = ir.StringAttr.get(new_name)
                    renamed[(other_name, name)] = new_name
                    name = new_name
                elif name in seen:
                    continue  # a shared declaration, already there
                seen.add(name)
                ops = target_body.operations
                last = ops[len(ops) - 1].operation
                if last.name == "gpu.module_end":
                    op.move_before(last)
                else:
                    op.move_after(last)
            other.erase()

        def visit(op: ir.Operation) -> ir.WalkResult:
            if op.name == "gpu.launch_func":
                path = ir.SymbolRefAttr(op.attributes["kernel"]).value
                kernel = renamed.get((path[0], path[-1]), path[-1])
                op.attributes["kernel"] = ir.SymbolRefAttr.get([first_name, kernel])
            return ir.WalkResult.ADVANCE

        module.operation.walk(visit)


__all__ = ["merge_gpu_modules"]
