"""Which schedule each linalg op of a bufferized host function gets.

Runs after bufferization, on memrefs (named ops are generalized first, except contractions
and convolutions, which keep their names for the fallback record): each run of ops over the
same rows with a row reduction among them (softmax, layer norm) becomes one kernel
(``row_group.py``); then every other ``linalg.generic`` that the elementwise or the
row-reduction schedule accepts becomes a ``gpu.launch``; the
others stay linalg ops, which ``mo-record-fallbacks`` records and ``mo-gpu-map-loops`` maps
to plain GPU loops.
"""

from __future__ import annotations

import logging

from mlir import ir

from max.compiler.gpu import body, elementwise, matmul, mma, reduction, row_group
from max.compiler.passes.registry import pass_manager

log = logging.getLogger("max.compiler")

# Named ops that stay named: the plain-loops mapping handles them, and the record names them.
KEEP_NAMED = ("linalg.matmul", "linalg.batch_matmul", "linalg.matvec", "linalg.vecmat",
              "linalg.conv", "linalg.depthwise", "linalg.pooling", "linalg.contract",
              "linalg.generic", "linalg.yield", "linalg.index", "linalg.mmt4d", "linalg.pack",
              "linalg.unpack", "linalg.softmax")


def host_functions(module: ir.Module) -> list[ir.Operation]:
    """The module's ``func.func`` ops with a body (kernels live in ``gpu.module`` ops)."""
    return [op.operation for op in module.body.operations
            if op.operation.name == "func.func" and len(op.operation.regions[0].blocks)]


def generalize(module: ir.Module, everything: bool = False) -> None:
    """Named elementwise ops, fills, copies, transposes, broadcasts -> ``linalg.generic``
    (``everything``: contractions and convolutions too)."""
    from mlir.dialects import transform  # noqa: F401  (registers the dialect's Python side)

    names: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name.startswith("linalg.") and op.name not in ("linalg.generic", "linalg.yield",
                                                             "linalg.index") and \
                (everything or not op.name.startswith(KEEP_NAMED)):
            names.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    if not names:
        return
    if everything:
        pass_manager("linalg-generalize-named-ops").run(module.operation)
        return
    # Not linalg-generalize-named-ops: it would generalize the contractions too.
    script = ir.Module.parse(_GENERALIZE_TD)
    from mlir.dialects.transform import interpreter

    interpreter.apply_named_sequence(module.operation, script.body.operations[0], script)


_GENERALIZE_TD = """
module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
    %ops = transform.structured.match ops{["linalg.fill", "linalg.copy", "linalg.transpose",
        "linalg.broadcast", "linalg.map", "linalg.elementwise", "linalg.add", "linalg.sub",
        "linalg.mul", "linalg.div", "linalg.max", "linalg.min", "linalg.exp", "linalg.log",
        "linalg.abs", "linalg.negf", "linalg.reduce"]} in %root
        : (!transform.any_op) -> !transform.any_op
    transform.structured.generalize %ops : (!transform.any_op) -> !transform.any_op
    transform.yield
  }
}
"""


def schedule(module: ir.Module, block: int, reduce_block: int, max_blocks: int,
             wave: int = reduction.WARP, tensor_cores: bool = False) -> list[str]:
    """Rewrites each linalg op a schedule accepts into a kernel; returns, for the log, one
    line per op left as it was (why). ``wave``: lanes per warp (NVIDIA, 32) or wavefront
    (AMD CDNA, 64), which the reductions' shuffles span; ``tensor_cores``: half-precision
    matmuls through ``mma.sync`` (NVIDIA sm_80+, ``mma.py``)."""
    generalize(module)
    left: list[str] = []
    for fn in host_functions(module):
        for group in row_group.find_groups(fn.regions[0].blocks[0]):
            row_group.emit(group, reduce_block, wave)
        for op in list(fn.regions[0].blocks[0].operations):
            if op.operation.name in matmul.NAMES:
                halves = mma.half_sources(op.operation) if tensor_cores and \
                    matmul.why_not(op.operation) is None else None
                if halves is not None:
                    mma.emit(op.operation, *halves)
                    continue
                why_mm = matmul.why_not(op.operation)
                if why_mm is None:
                    matmul.emit(op.operation)
                else:
                    left.append(f"{op.operation.name}: {why_mm}")
        ops = [op for op in fn.regions[0].blocks[0].operations
               if op.name == "linalg.generic"]
        for op in ops:
            op = op.operation
            why_ew = elementwise.why_not(op)
            if why_ew is None:
                body.emit(op, elementwise.kernel_text(op, block, max_blocks))
                continue
            why_red = reduction.why_not(op)
            if why_red is None:
                body.emit(op, reduction.kernel_text(op, reduce_block, wave))
                continue
            left.append(f"{op.name}: elementwise: {why_ew}; reduction: {why_red}")
    with module.context:
        pass_manager("canonicalize,cse").run(module.operation)
    for line in left:
        log.info("GPU schedule: plain loops for %s", line)
    return left


__all__ = ["KEEP_NAMED", "generalize", "host_functions", "schedule"]
