"""mo.constant -> arith.constant on the builtin (signless) tensor type."""

from __future__ import annotations

import numpy as np
from mlir import ir
from mlir.dialects import arith

from max.compiler.lowering.context import LoweringContext
from max.compiler.lowering.registry import lowering


@lowering("mo.constant")
def _constant(ctx: LoweringContext) -> list[ir.Value]:
    out_t = ctx.result_types[0]
    if not out_t.is_static:
        raise ctx.error(f"constant with symbolic shape {out_t.dims}")
    want = ctx.tensor_type(out_t)
    value = ctx.attr("value")
    if isinstance(value, ir.DenseElementsAttr):
        attr = ir.DenseElementsAttr(value)
        if attr.type == want:
            return [arith.constant(want, attr)]
        if out_t.element_type == "i1":  # bool payloads become i8 0/1 storage
            arr = np.asarray(attr).astype(np.int8) if not attr.is_splat else np.full(
                list(want.shape), bool(ir.BoolAttr(attr.get_splat_value()).value) if isinstance(
                    attr.get_splat_value(), ir.BoolAttr) else bool(
                    ir.IntegerAttr(attr.get_splat_value()).value), np.int8)
            return [arith.constant(want, ir.DenseElementsAttr.get(
                np.ascontiguousarray(arr), type=want.element_type, shape=list(want.shape)))]
        if list(ir.ShapedType(attr.type).shape) != list(want.shape):
            raise ctx.error(f"value of type {attr.type} does not fit {want}")
        if isinstance(value, ir.DenseIntElementsAttr) or isinstance(value, ir.DenseFPElementsAttr):
            # si*/ui* payloads: same bytes, reinterpreted as the signless type.
            if attr.is_splat:
                return [arith.constant(want, ir.DenseElementsAttr.get_splat(
                    want, _signless_scalar(attr.get_splat_value(), want.element_type)))]
            arr = np.asarray(attr)
            return [arith.constant(want, ir.DenseElementsAttr.get(
                np.ascontiguousarray(arr), signless=True, type=want.element_type,
                shape=list(want.shape)))]
        raise ctx.error(f"unsupported constant payload {attr.type}")
    if str(value.type) == str(want):
        return [arith.constant(want, value)]
    raise ctx.error(f"constant payload of type {value.type} must be {want}")


def _signless_scalar(a: ir.Attribute, t: ir.Type) -> ir.Attribute:
    if isinstance(a, ir.IntegerAttr):
        return ir.IntegerAttr.get(t, ir.IntegerAttr(a).value)
    return ir.FloatAttr.get(t, ir.FloatAttr(a).value)
