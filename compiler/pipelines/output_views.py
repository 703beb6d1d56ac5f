"""Outputs that are reshapes of a computed tensor, written in place through a view; the
inits of every output's chain kept apart from CSE (:func:`_keep_apart`).

A graph whose result is a reshape of what an op computes (a batch matmul over collapsed
batch dims viewed back as ``[b, h, m, n]``; an attention's ``reshape(permute(ctx))``) ends in
``materialize_in_destination(tensor.reshape(x)) in %out``. ``eliminate-empty-tensors`` does
not look through the reshape: ``x`` gets a buffer of its own, and the output is a copy of it
each call, a serial pass over the whole result ([8, 12, 128, 128] attention scores: 6 MiB,
about as long as the batch matmul that computed them).

:func:`write_through_reshapes` stores ``x`` into a view of the output with ``x``'s shape
instead (a ``memref.reinterpret_cast``, or ``memref.reshape`` for dynamic sizes: the output
is row-major, and a reshape of a row-major tensor keeps its element order), so that ``x``'s producer writes the output itself. The view
is made where everything it needs is defined and before anything that could use it: at the
start of the entry block where ``x``'s shape is static, else right before the
``tensor.empty`` at the root of ``x``'s destination chain, whose operands are ``x``'s
dynamic sizes.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, bufferization, memref

from max.compiler.passes.ir_util import as_op, blocks
from max.compiler.pipelines.self_copies import identity_layout

RESHAPES = ("tensor.reshape", "tensor.expand_shape", "tensor.collapse_shape")
KEEP_APART = "mo.out_init"  # see _keep_apart
_DYN = ir.ShapedType.get_dynamic_size()


def write_through_reshapes(module: ir.Module) -> int:
    """Rewrites each output stored through reshapes (see the module doc); returns how many."""
    count = 0
    for block in blocks(module.operation):
        stores = [op.operation for op in block.operations
                  if op.operation.name == "bufferization.materialize_in_destination"]
        # One output has no other output's inits to be merged with: unmarked, a model's
        # last layer still prints (and is outlined and split once) as its other layers.
        count += sum(_rewrite(store, len(stores) > 1) for store in stores)
    return count


def _rewrite(store: ir.Operation, keep_apart: bool) -> bool:
    source, dest = store.operands[0], store.operands[1]
    # The output memref of the entry: a block argument dominates every op of the function.
    if not isinstance(dest.type, ir.MemRefType) or not isinstance(dest.owner, ir.Block):
        return False
    reshapes: list[ir.Operation] = []
    x = source
    while (op := as_op(x.owner)) is not None and op.name in RESHAPES and _one_use(x):
        reshapes.append(op)
        x = op.operands[0]
    # Every output's inits, reshaped or not (two matmuls of one shape returned: the second
    # output held the first's product plus its own).
    inits = _init_chain(x)
    if keep_apart:
        _keep_apart(inits, ir.BlockArgument(dest).arg_number)
    if not reshapes or not identity_layout(ir.MemRefType(dest.type)):
        return False
    shape = list(ir.RankedTensorType(x.type).shape)
    if _DYN in shape:
        if not inits:
            return False
        empty = inits[-1]
        where, sizes = ir.InsertionPoint(empty), list(empty.operands)
    else:
        where, sizes = ir.InsertionPoint.at_block_begin(dest.owner), []
    with where, store.location:
        view = _view(dest, shape, sizes)
    with ir.InsertionPoint(store), store.location:
        bufferization.MaterializeInDestinationOp(
            None, x, view, restrict="restrict" in store.attributes,
            writable="writable" in store.attributes)
    store.erase()
    for op in reshapes:  # outermost first: each is the only user of the next
        shape_operands = [as_op(v.owner) for v in list(op.operands)[1:]]
        op.erase()
        for producer in shape_operands:  # tensor.reshape's shape, where nothing else reads it
            if producer is not None and not any(True for r in producer.results
                                                for _ in r.uses):
                producer.erase()
    return True


def _one_use(v: ir.Value) -> bool:
    return sum(1 for _ in v.uses) == 1


def _init_chain(x: ir.Value) -> list[ir.Operation]:
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


def _keep_apart(chain: list[ir.Operation], key: int) -> None:
    """Marks the inits of an output's chain with the output's number: the schedule's CSE
    would otherwise merge them with another output chain's identical ones (two matmuls'
    or two small reductions' zero fills, kept apart by mo-dps-inits), and
    ``eliminate-empty-tensors`` would make the one empty tensor left a view of the first
    output for both chains (the second output got the first's values, or their sum)."""
    i64 = ir.IntegerType.get_signless(64)
    for op in chain:
        if op.name in ("tensor.empty", "linalg.fill"):
            op.attributes[KEEP_APART] = ir.IntegerAttr.get(i64, key)


def _view(dest: ir.Value, shape: list[int], dynamic: list[ir.Value]) -> ir.Value:
    """``dest`` (row-major) viewed as a row-major ``shape``; ``dynamic``: the sizes of its
    dynamic dims, in order. Of the identity layout, so that a kernel writing the view prints
    (and is outlined, and shared between layers) as one writing any other output."""
    index = ir.IndexType.get()
    t = ir.MemRefType.get(shape, ir.MemRefType(dest.type).element_type)
    if _DYN not in shape:  # static: a cast whose strides are those of the identity layout
        strides = [1] * len(shape)
        for i in range(len(shape) - 2, -1, -1):
            strides[i] = strides[i + 1] * shape[i + 1]
        return memref.reinterpret_cast(t, dest, [], [], [], [0], shape, strides)
    # Dynamic sizes: memref.reshape (identity layout) from a shape held on the stack.
    it = iter(dynamic)
    sizes = [next(it) if s == _DYN else arith.constant(index, s) for s in shape]
    held = memref.alloca(ir.MemRefType.get([len(shape)], index), [], [])
    for i, size in enumerate(sizes):
        memref.store(size, held, [arith.constant(index, i)])
    return memref.reshape(t, dest, held)


__all__ = ["KEEP_APART", "write_through_reshapes"]
