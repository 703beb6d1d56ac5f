"""Copies of a buffer onto itself, left by bufferization where a result is written in place
and then viewed back into its own shape; each is a serial pass over the whole buffer."""

from __future__ import annotations

from mlir import ir

from max.compiler.passes.ir_util import as_op


def drop_self_copies(module: ir.Module) -> int:
    """Erases each copy of a buffer onto itself, returns how many:

    * ``memref.copy(expand_shape(collapse_shape(x)), x)``: the unit panel dim folded away
      by reshapes (see :func:`matmul_pack.schedule`) comes back as a copy of the register
      tile's C block onto itself after bufferization;
    * ``memref.copy(memref.reshape(x, shape), x)``: a matmul's result written into the
      output and then viewed back into the output's shape by ``tensor.reshape`` (the batch
      dims collapsed for the matmul, sizes symbolic). Both are row-major views of one buffer
      of the same shape (the copy requires it), so every element is copied onto itself: a
      serial pass over the whole result each call ([96, s, s] attention scores at s = 96:
      1.56 ms a call with it, 0.65 with s static)."""
    found: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "memref.copy":
            src = as_op(op.operands[0].owner)
            if (src is not None and src.name == "memref.reshape"
                    and src.operands[0] == op.operands[1]
                    and all(identity_layout(ir.MemRefType(v.type))
                            for v in (src.operands[0], src.results[0]))):
                found.append(op)
            elif src is not None and src.name == "memref.expand_shape":
                inner = as_op(src.operands[0].owner)
                if (inner is not None and inner.name == "memref.collapse_shape"
                        and inner.operands[0] == op.operands[1]
                        and src.attributes["reassociation"] == inner.attributes["reassociation"]):
                    found.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    for op in found:
        op.erase()
    return len(found)


def identity_layout(t: ir.MemRefType) -> bool:
    """Whether ``t`` is row-major with no offset (the identity layout)."""
    layout = t.layout
    return isinstance(layout, ir.AffineMapAttr) and \
        layout.value == ir.AffineMap.get_identity(t.rank)


__all__ = ["drop_self_copies", "identity_layout"]
