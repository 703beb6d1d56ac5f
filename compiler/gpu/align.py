"""16-byte alignment for the workgroup (shared) buffers of the outlined kernels.

A workgroup buffer is aligned to its element type (4 bytes for f32) unless its ``gpu.func``
attribution says otherwise; the matmul reads its tiles with 128-bit shared loads, which a
4-byte-aligned buffer would fault on. Every attribution gets ``llvm.align = 16``.
"""

from __future__ import annotations

from mlir import ir

ALIGN = 16


def align_workgroup_buffers(module: ir.Module) -> None:
    """Sets ``llvm.align`` on every workgroup attribution of every ``gpu.func``."""
    with module.context:
        def visit(op: ir.Operation) -> ir.WalkResult:
            if op.name == "gpu.func" and "workgroup_attributions" in op.attributes:
                count = ir.IntegerAttr(op.attributes["workgroup_attributions"]).value
                align = ir.DictAttr.get(
                    {"llvm.align": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), ALIGN)})
                op.attributes["workgroup_attrib_attrs"] = ir.ArrayAttr.get([align] * count)
            return ir.WalkResult.ADVANCE

        module.operation.walk(visit)


__all__ = ["ALIGN", "align_workgroup_buffers"]
