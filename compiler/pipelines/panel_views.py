"""Views of a load-time argument's panels as plain strided memrefs (after bufferization).

:mod:`matmul_pack` reads a prepacked B through reshapes of the argument's bytes
(``expand_shape(collapse_shape(arg))``, and for a ragged B a 1-D slice in between:
:mod:`ragged_panels`). Through them, ``fold-memref-alias-ops`` indexes each panel row as
``x[i floordiv N, i mod N]``, which LLVM keeps as and-masks on every k step of the register
kernel (about 5 scalar ops per 16 FMAs); :func:`linear_panels` makes each such view one
``memref.reinterpret_cast`` with plain strides, so that the B pointer just advances.
"""

from __future__ import annotations

import numpy as np
from mlir import ir
from mlir.dialects import memref

from max.compiler.passes.ir_util import as_op, static_subview_offset
from max.compiler.pipelines.self_copies import identity_layout


def linear_panels(module: ir.Module) -> int:
    """Replaces each ``memref.expand_shape`` of a static identity-layout ``x`` through one
    flat dim (``memref.collapse_shape(x)``, or a static unit-stride 1-D ``memref.subview``
    of it) by a ``memref.reinterpret_cast`` of ``x`` to the expanded shape (at the slice's
    offset). Returns how many."""
    found: list[tuple[ir.Operation, ir.Operation, int]] = []  # expand, collapse, offset

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "memref.expand_shape" and ir.MemRefType(op.operands[0].type).rank == 1:
            src, offset = as_op(op.operands[0].owner), 0
            if src is not None and src.name == "memref.subview":  # a ragged B's head or tail
                offset = static_subview_offset(src)
                src = as_op(src.operands[0].owner) if offset is not None else None
            if src is not None and src.name == "memref.collapse_shape":
                x, out = ir.MemRefType(src.operands[0].type), ir.MemRefType(op.results[0].type)
                if (x.has_static_shape and out.has_static_shape and identity_layout(x)
                        and (identity_layout(out) or offset)):
                    found.append((op, src, offset))
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    for op, src, offset in found:
        out = ir.MemRefType(op.results[0].type)
        shape = list(out.shape)
        strides = [int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape))]
        view = as_op(op.operands[0].owner)
        view = view if view is not None and view.name == "memref.subview" else None
        with ir.InsertionPoint(op), op.location:
            cast = memref.reinterpret_cast(out, src.operands[0], [], [], [], [offset], shape,
                                           strides)
        op.results[0].replace_all_uses_with(cast)
        op.erase()
        for dead in (view, src):
            if dead is not None and not list(dead.results[0].uses):
                dead.erase()
    return len(found)


__all__ = ["linear_panels"]
