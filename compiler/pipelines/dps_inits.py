"""Give every destination-passing chain its own ``tensor.empty``/``linalg.fill`` init.

CSE merges identical inits (two reductions both starting from ``fill(0, empty)``). Then
``eliminate-empty-tensors`` rewrites that one ``tensor.empty`` into a view of the *first*
output's memref for every user, while the entry's ``materialize_in_destination ... restrict``
promises the bufferizer that nothing else aliases that memref: a second result computed in
the shared init is overwritten by the first output's copy (argmax and argmin of one tensor
returned the same values). Cloning each shared init per consumer keeps the chains apart.
"""

from __future__ import annotations

from mlir import ir

from max.compiler.passes.ir_util import blocks

_INIT_OPS = ("tensor.empty", "linalg.fill")


def duplicate_shared_inits(module: ir.Module) -> None:
    """Clones each init op with several users so that every user has its own copy."""
    for block in list(blocks(module.operation)):
        for op in list(block.operations):
            op = op.operation
            if op.name not in _INIT_OPS or len(op.results) != 1:
                continue
            uses = [(u.owner, u.operand_number) for u in op.results[0].uses]
            for owner, operand_number in uses[1:]:
                owner = owner.operation if hasattr(owner, "operation") else owner
                clone = _clone_chain(op, owner)
                owner.operands[operand_number] = clone.results[0]


def _clone_chain(op: ir.Operation, before: ir.Operation) -> ir.Operation:
    """Clones ``op`` (and a fill's own empty init) right before ``before``."""
    with ir.InsertionPoint(before):
        if op.name == "linalg.fill":
            init = op.operands[1].owner
            init = init.operation if hasattr(init, "operation") else init
            # The empty's clone first: it must dominate the fill's clone.
            empty = (init.clone() if isinstance(init, ir.Operation) and init.name == "tensor.empty"
                     else None)
            clone = op.clone()
            if empty is not None:
                clone.operands[1] = empty.results[0]
            return clone
        return op.clone()
