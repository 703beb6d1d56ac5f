"""float16/bfloat16/float8 ops that accumulate compute in f32: extend on load, round once.

A 16-bit accumulator stops growing early (a float16 sum of 4096 ones is 2048, a bfloat16 one
256) and every step of a softmax or layer norm would round to 8 or 11 bits. numpy computes
float16 reductions in float32 and rounds once; so do we, for sum, mean, matmul, softmax,
logsoftmax and layer_norm. (max/min/argmax/argmin pick an element: exact in any precision;
only float8, which has no arithmetic of its own, computes them in f32 too.)

:func:`in_f32` wraps a rule: the 16-bit float operands are extended by elementwise generics
(which ``linalg-fuse-elementwise-ops`` fuses into their consumers, or which give a named
``linalg.matmul`` f32 operands that the CPU schedule vectorizes), the rule runs on f32, and
each 16-bit result is one truncating generic (fused into its producer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from mlir import ir

from max.compiler.lowering.builders import PARALLEL, generic, identity_map
from max.compiler.lowering.context import LoweringContext
from max.compiler.lowering.float8 import FORMATS
from max.dialects.mo.types import MOTensorType

FLOAT8 = frozenset(FORMATS)
LOW = frozenset({"f16", "bf16"}) | FLOAT8  # float8 is storage only (see float8.py)
WIDE = "f32"

Rule = Callable[[LoweringContext], list[ir.Value]]


def widened(t: MOTensorType, types: frozenset[str] = LOW) -> MOTensorType:
    """``t`` with an element type in ``types`` (16-bit floats, float8) replaced by f32."""
    return dataclasses.replace(t, element_type=WIDE) if t.element_type in types else t


def convert(ctx: LoweringContext, value: ir.Value, t: MOTensorType, to: str) -> ir.Value:
    """An elementwise generic converting ``value`` (of type ``t``) to element type ``to``."""
    from max.compiler.lowering.elementwise import convert_scalar  # cycle: elementwise -> here

    src = t.element_type
    return generic([value], [ctx.empty(t, to)], [identity_map(t.rank)] * 2, [PARALLEL] * t.rank,
                   lambda x, _: convert_scalar(x, src, to))[0]


def in_f32(rule: Rule, types: frozenset[str] = LOW) -> Rule:
    """``rule`` computed in f32 when an operand or result has an element type in ``types``."""

    def wrapped(ctx: LoweringContext) -> list[ir.Value]:
        if not any(t.element_type in types for t in ctx.operand_types + ctx.result_types):
            return rule(ctx)
        operands = tuple(convert(ctx, v, t, WIDE) if t.element_type in types else v
                         for v, t in zip(ctx.operands, ctx.operand_types))
        wide = dataclasses.replace(
            ctx, operands=operands,
            operand_types=tuple(widened(t, types) for t in ctx.operand_types),
            result_types=tuple(widened(t, types) for t in ctx.result_types))
        results = rule(wide)
        return [convert(ctx, r, widened(t, types), t.element_type)
                if t.element_type in types else r for r, t in zip(results, ctx.result_types)]

    wrapped.__name__ = rule.__name__
    wrapped.__doc__ = rule.__doc__
    return wrapped


__all__ = ["FLOAT8", "LOW", "convert", "in_f32", "widened"]
