"""Buffer ops -> memref ops, ordered by program order.

A buffer is a ``memref`` (a graph input's memref is the caller's memory). Tensor ops are pure
and may be moved, fused or bufferized in place; memref reads and writes are side effects that
no pass reorders. So every buffer access is a memref op at the op's place in the block: a load
copies the buffer into a fresh allocation (``memref.copy``) and only then becomes a tensor,
so a later store cannot change what was loaded; a store is
``bufferization.materialize_in_destination`` into the memref (or a strided ``subview`` of it),
a write one-shot bufferization keeps where it is.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import bufferization, memref

from max.compiler.lowering.context import LoweringContext, builtin_memref_type, element_type
from max.compiler.lowering.registry import lowering
from max.dialects.mo.types import MOTensorType

DYNAMIC = ir.ShapedType.get_dynamic_size()


def _alloc(ctx: LoweringContext, t: MOTensorType) -> ir.Value:
    dynamic = [ctx.dim_value(d) for d in t.dims if not isinstance(d, int)]
    return memref.alloc(builtin_memref_type(t), dynamic, [])


@lowering("mo.buffer_create")
def _create(ctx: LoweringContext) -> list[ir.Value]:
    return [_alloc(ctx, ctx.result_types[0])]


@lowering("mo.buffer_load")
def _load(ctx: LoweringContext) -> list[ir.Value]:
    (buffer,) = ctx.operands
    copy = _alloc(ctx, ctx.result_types[0])
    memref.copy(buffer, copy)
    # restrict: the fresh copy has no other tensor view; writable: ops may reuse it in place.
    return [bufferization.to_tensor(ctx.tensor_type(ctx.result_types[0]), copy,
                                    restrict=True, writable=True)]


@lowering("mo.buffer_store")
def _store(ctx: LoweringContext) -> list[ir.Value]:
    buffer, x = ctx.operands
    bufferization.materialize_in_destination(None, x, buffer, writable=True)
    return []


@lowering("mo.buffer_store_slice")
def _store_slice(ctx: LoweringContext) -> list[ir.Value]:
    buffer, x = ctx.operands
    _, x_type = ctx.operand_types
    starts, steps = ctx.dense_ints("starts"), ctx.dense_ints("steps")
    rank = len(starts)
    # A cast to a fully dynamic strided layout first: the subview's result type is then
    # dynamic strides and offset whatever the buffer's shape (no layout arithmetic here).
    elem = element_type(x_type.element_type)
    src_shape = list(ir.MemRefType(buffer.type).shape)
    layout = ir.Attribute.parse(f"strided<[{', '.join(['?'] * rank)}], offset: ?>")
    dynamic_view = memref.cast(ir.MemRefType.get(src_shape, elem, layout), buffer)
    sizes = ctx.dims(x_type)
    view_type = ir.MemRefType.get([d if isinstance(d, int) else DYNAMIC for d in x_type.dims],
                                  elem, layout)
    window = memref.subview(dynamic_view, starts, sizes, steps, result_type=view_type)
    bufferization.materialize_in_destination(None, x, window, writable=True)
    return []
