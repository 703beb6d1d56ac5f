"""4-bit codes to floats by a table lookup: ``sitofp(x & 15)`` and ``sitofp(x >> 4)`` of a
zero-extended byte become one AVX-512 ``vpermps`` each.

The decode ``qmatmul`` (``lowering/quant_gemv``) widens 16 bytes of 4-bit codes to 32-bit lanes
and converts each half to f32: a mask and two conversions, all on the vector port the FMAs
need. ``vpermps`` reads only the low 4 bits of each lane's index, so a 16-entry table
``[0.0, 1.0, ..., 15.0]`` gives the float of the low nibble with no mask, and of the high
nibble after the shift, on the shuffle port. Rewritten after the dealloc pipeline: the LLVM
intrinsic has no declared memory effects, which buffer deallocation refuses.
"""

from __future__ import annotations

import numpy as np
from mlir import ir
from mlir.dialects import arith, llvm

from max.compiler.host_cpu import host
from max.compiler.passes.ir_util import as_op

LANES = 16
INTRINSIC = "llvm.x86.avx512.permvar.sf.512"


def _splat_int(v: ir.Value) -> int | None:
    """The value of a constant integer splat vector, else None."""
    op = as_op(v.owner)
    if op is None or op.name != "arith.constant":
        return None
    attr = op.attributes["value"]
    if not isinstance(attr, ir.DenseIntElementsAttr) or not attr.is_splat:
        return None
    return ir.IntegerAttr(attr.get_splat_value()).value


def _is_byte(v: ir.Value) -> bool:
    """Whether ``v`` is a zero extension of 8-bit lanes (so ``v >> 4`` is below 16)."""
    op = as_op(v.owner)
    if op is None or op.name != "arith.extui":
        return False
    src = ir.VectorType(op.operands[0].type)
    return isinstance(src.element_type, ir.IntegerType) and src.element_type.width == 8


def _index_of(conv: ir.Operation) -> ir.Value | None:
    """The ``vpermps`` index that gives ``conv``'s result, when ``conv`` is a nibble's
    conversion (``sitofp(x & 15)``: ``x``; ``sitofp(byte >> 4)``: the shift)."""
    src = as_op(conv.operands[0].owner)
    if src is None:
        return None
    if src.name == "arith.andi" and _splat_int(src.operands[1]) == 15:
        return src.operands[0]
    if src.name == "arith.shrui" and _splat_int(src.operands[1]) == 4 and _is_byte(
            src.operands[0]):
        return src.results[0]
    return None


def lookup_nibbles(module: ir.Module) -> int:
    """Rewrites each nibble conversion (see the module docstring); returns how many."""
    if not host().has_permvar:
        return 0
    found: list[tuple[ir.Operation, ir.Value]] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "arith.sitofp":
            t, src = op.results[0].type, op.operands[0].type
            if (isinstance(t, ir.VectorType) and ir.VectorType(t).shape == [LANES]
                    and isinstance(ir.VectorType(t).element_type, ir.F32Type)
                    and isinstance(ir.VectorType(src).element_type, ir.IntegerType)
                    and ir.IntegerType(ir.VectorType(src).element_type).width == 32):
                index = _index_of(op)
                if index is not None:
                    found.append((op, index))
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    for conv, index in found:
        vf = conv.results[0].type
        with ir.InsertionPoint(conv), conv.location:
            table = arith.constant(vf, ir.DenseElementsAttr.get(
                np.arange(LANES, dtype=np.float32), type=vf))
            looked_up = llvm.call_intrinsic(vf, INTRINSIC, [table, index], [], [])
        conv.results[0].replace_all_uses_with(looked_up)
        conv.erase()
    return len(found)


__all__ = ["INTRINSIC", "lookup_nibbles"]
