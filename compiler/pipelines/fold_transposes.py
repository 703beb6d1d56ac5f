"""Transposes read in place: a ``linalg.transpose`` feeding ``linalg.generic`` ops becomes their
indexing maps.

``mo.transpose`` lowers to the named ``linalg.transpose``, which elementwise fusion leaves
alone, so a permuted read costs a copy of the whole tensor first. An LLM's attention over its
KV cache reads the cache as ``[batch, heads, positions, head_dim]`` while it is stored
positions-first: two copies of the used cache per layer and token (SmolLM2 at 128 cached
positions: 9 us each, growing with the context). Here each ``linalg.generic`` input that is a
transpose's result reads the transpose's input instead, through the composed map, and the
transpose goes when nothing else reads it.

Only reads that keep their last index are folded (the transposition leaves the innermost
subscript in place): the reduction and elementwise schedules vectorize along the innermost
loop, and a read that was contiguous along it stays so. Anything else keeps its copy.
"""

from __future__ import annotations

from mlir import ir

from max.compiler.passes.ir_util import as_op


def _inverse(perm: list[int]) -> list[int]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def _fold_into(transpose: ir.Operation, user: ir.Operation, index: int) -> bool:
    """Rewrites input ``index`` of ``user`` to read the transpose's input; False if refused."""
    maps = [ir.AffineMapAttr(a).value for a in ir.ArrayAttr(user.attributes["indexing_maps"])]
    old = maps[index]
    perm = list(ir.DenseI64ArrayAttr(transpose.attributes["permutation"]))
    results = list(old.results)
    # out[x] = in[y] with y[perm[i]] = x[i]: the input's subscript j is the old subscript
    # inv[j].
    new_results = [results[i] for i in _inverse(perm)]
    if str(new_results[-1]) != str(results[-1]):
        return False
    maps[index] = ir.AffineMap.get(old.n_dims, old.n_symbols, new_results)
    user.attributes["indexing_maps"] = ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps])
    user.operands[index] = transpose.operands[0]
    return True


def fold_transposes(module: ir.Module) -> int:
    """Folds every foldable transposed read (see the module docstring); returns how many."""
    transposes: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "linalg.transpose" and len(op.results) == 1:
            transposes.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    folded = 0
    for t in transposes:
        result = t.results[0]
        for use in list(result.uses):
            user = use.owner
            if user.name != "linalg.generic":
                continue
            n_inputs = len(user.operands) - len(user.results)
            if use.operand_number >= n_inputs:
                continue  # an init: written, not read
            if _fold_into(t, user, use.operand_number):
                folded += 1
        if not list(result.uses):
            init = as_op(t.operands[1].owner)
            t.erase()
            if init is not None and init.name == "tensor.empty" and not list(init.results[0].uses):
                init.erase()
    return folded


__all__ = ["fold_transposes"]
