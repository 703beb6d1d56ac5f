"""Load-time layouts chosen before lowering: quantized weights that only the decode
``qmatmul`` reads are stored ``split`` (``runtime/layouts``).

A GGUF weight keeps each block's f16 scale (and min) next to its codes; the decode path
(``quant_gemv``) would convert and broadcast them one block at a time, which is half of its
vector work. When every reader of a load-time argument (a named weight or an externalized
constant: ``arg_layouts.load_time_args``) is an ``mo.qmatmul`` of one encoding that
``quant_gemv`` handles, the argument is recorded in layout ``ENC_split`` and each of those ops
is marked (:data:`SPLIT_ATTR`) so that its rule reads that layout. Runs on the MO function,
before its ops are lowered, because the rule builds the decode loop as it lowers the op.
"""

from __future__ import annotations

from mlir import ir

from max.compiler.lowering import quant_gemv
from max.compiler.pipelines import arg_layouts
from max.dialects.mo.types import MOTensorType, parse_tensor_type

SPLIT_ATTR = "mo.split_weight"  # on an mo.qmatmul: its weight is stored "ENC_split"


def _lhs_rows(t: MOTensorType) -> int | None:
    """The lhs rows of a qmatmul (its leading dims collapsed): an int if static, else None."""
    rows = 1
    for d in t.dims[:-1]:
        if not isinstance(d, int):
            return None
        rows *= d
    return rows


def _gemv_encoding(op: ir.Operation) -> str | None:
    """The encoding of an ``mo.qmatmul`` that takes the decode path, else None."""
    if op.name != "mo.qmatmul" or "encoding" not in op.attributes:
        return None
    enc = ir.StringAttr(op.attributes["encoding"]).value
    try:
        lhs = parse_tensor_type(op.operands[0].type)
    except ValueError:
        return None  # the rule reports a bad type
    rows = _lhs_rows(lhs)
    return enc if quant_gemv.applies(enc, "symbolic" if rows is None else rows) else None


def _reads_as_weight_only(op: ir.Operation, arg: ir.Value) -> bool:
    """Whether ``op`` reads ``arg`` as its second operand (a qmatmul's weight) and only so."""
    operands = list(op.operands)
    return len(operands) == 2 and operands[1] == arg and operands[0] != arg


def plan_split_weights(module: ir.Module, fn: ir.Operation) -> dict[str, str]:
    """Marks the decode qmatmuls of ``fn`` (an MO graph function) whose weight can be stored
    split and records those layouts in ``module``; returns them (``{"w3": "q4_1_split"}``)."""
    args = arg_layouts.load_time_args(fn)
    if not args:
        return {}
    block = fn.regions[0].blocks[0]
    chosen: dict[str, str] = {}
    for number, key in args.items():
        arg = block.arguments[number]
        users = [use.owner for use in arg.uses]
        if not users:
            continue
        encodings = {_gemv_encoding(u) if _reads_as_weight_only(u, arg) else None
                     for u in users}
        if len(encodings) != 1 or (enc := encodings.pop()) is None:
            continue
        for user in users:
            user.attributes[SPLIT_ATTR] = ir.UnitAttr.get()
        arg_layouts.record(module, key, f"{enc}_split")
        chosen[key] = f"{enc}_split"
    return chosen


__all__ = ["SPLIT_ATTR", "plan_split_weights"]
