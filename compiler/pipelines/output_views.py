"""Outputs that are reshapes of a computed tensor, written in place through a view.

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
from max.compiler.pipelines.dps_inits import init_chain, output_stores, stored_value
from max.compiler.pipelines.self_copies import identity_layout

_DYN = ir.ShapedType.get_dynamic_size()


def write_through_reshapes(module: ir.Module) -> int:
    """Rewrites each output stored through reshapes (see the module doc); returns how many."""
    return sum(_rewrite(store) for block in blocks(module.operation)
               for store in output_stores(block))


def _rewrite(store: ir.Operation) -> bool:
    dest = store.operands[1]
    x, reshapes = stored_value(store)
    if not reshapes or not identity_layout(ir.MemRefType(dest.type)):
        return False
    shape = list(ir.RankedTensorType(x.type).shape)
    if _DYN in shape:
        inits = init_chain(x)
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


__all__ = ["write_through_reshapes"]
