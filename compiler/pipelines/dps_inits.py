"""Give every destination-passing chain its own ``tensor.empty``/``linalg.fill`` init.

CSE merges identical inits (two reductions both starting from ``fill(0, empty)``). Then
``eliminate-empty-tensors`` rewrites that one ``tensor.empty`` into a view of the *first*
output's memref for every user, while the entry's ``materialize_in_destination ... restrict``
promises the bufferizer that nothing else aliases that memref: a second result computed in
the shared init is overwritten by the first output's copy (argmax and argmin of one tensor
returned the same values). Cloning each shared init per consumer keeps the chains apart;
and since a later CSE (the CPU schedule's) merges identical clones again, the inits of each
output's chain are marked with the output's number (:func:`keep_outputs_apart`).
"""

from __future__ import annotations

from mlir import ir

from max.compiler.passes.ir_util import as_op, blocks

_INIT_OPS = ("tensor.empty", "linalg.fill")
RESHAPES = ("tensor.reshape", "tensor.expand_shape", "tensor.collapse_shape")
KEEP_APART = "mo.out_init"  # see keep_outputs_apart


def duplicate_shared_inits(module: ir.Module) -> None:
    """Clones each init op with several users so that every user has its own copy; then
    marks the outputs' inits apart (:func:`keep_outputs_apart`)."""
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
    keep_outputs_apart(module)


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


def init_chain(x: ir.Value) -> list[ir.Operation]:
    """The ops of ``x``'s destination chain (through the tied inits of linalg ops, fills
    included) down to the ``tensor.empty`` it starts from, that last; [] where it starts
    from anything else."""
    chain: list[ir.Operation] = []
    while (op := as_op(x.owner)) is not None:
        chain.append(op)
        if op.name == "tensor.empty":
            return chain
        if not op.name.startswith("linalg.") or not len(op.results):
            return []
        number = ir.OpResult(x).result_number
        x = list(op.operands)[len(op.operands) - len(op.results) + number]
    return []


def keep_outputs_apart(module: ir.Module) -> None:
    """Marks the inits of each output's chain with the output's number, where a function has
    several outputs (and those of each part a forall's iteration inserts, ``"part I"``, where
    it inserts several): the schedule's CSE would otherwise merge them again with another output
    chain's identical ones (two matmuls' or two small reductions' zero fills), and
    ``eliminate-empty-tensors`` would make the one empty tensor left a view of the first
    output for both chains (the second output got the first's values, or their sum). One
    output has no other output's inits to be merged with: unmarked, a model's last layer
    still prints (and is outlined and split once) as its other layers."""
    i64 = ir.IntegerType.get_signless(64)
    for block in blocks(module.operation):
        stores = output_stores(block)
        for store in stores if len(stores) > 1 else ():
            key = ir.IntegerAttr.get(i64, ir.BlockArgument(store.operands[1]).arg_number)
            _mark(stored_value(store)[0], key)
        # The parts a forall's iteration writes (a quantized matmul's two half tiles): the
        # same merge made the one empty tensor a view of the first part's slice of the
        # shared output for both, and the second part was written over the first.
        parts = [op.operation for op in block.operations
                 if op.operation.name == "tensor.parallel_insert_slice"]
        for i, part in enumerate(parts if len(parts) > 1 else ()):
            _mark(part.operands[0], ir.StringAttr.get(f"part {i}"))


def _mark(value: ir.Value, key: ir.Attribute) -> None:
    for op in init_chain(value):
        if op.name in _INIT_OPS:
            op.attributes[KEEP_APART] = key


def output_stores(block: ir.Block) -> list[ir.Operation]:
    """The ``materialize_in_destination`` ops of ``block`` that store an entry's outputs:
    into its memref arguments, which dominate every op of the function."""
    return [op.operation for op in block.operations
            if op.operation.name == "bufferization.materialize_in_destination"
            and isinstance(op.operands[1].type, ir.MemRefType)
            and isinstance(op.operands[1].owner, ir.Block)]


def stored_value(store: ir.Operation) -> tuple[ir.Value, list[ir.Operation]]:
    """What an output store stores, through the reshapes that only it reads, and those
    reshapes (the outermost first)."""
    reshapes: list[ir.Operation] = []
    x = store.operands[0]
    while (op := as_op(x.owner)) is not None and op.name in RESHAPES and sum(
            1 for _ in x.uses) == 1:
        reshapes.append(op)
        x = op.operands[0]
    return x, reshapes


__all__ = ["KEEP_APART", "RESHAPES", "duplicate_shared_inits", "init_chain",
           "keep_outputs_apart", "output_stores", "stored_value"]
