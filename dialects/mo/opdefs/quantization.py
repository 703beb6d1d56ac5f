"""``mo.dequantize`` and ``mo.qmatmul``: GGUF block-quantized uint8 tensors (blocks -> elements).

A quantized tensor is ``uint8`` whose last dim holds whole blocks of an encoding's GGUF byte
layout; ``encoding`` is the attribute (``"q4_0"``, ``"q4_1"``, ``"q8_0"``, ``"q4_k"``,
``"q5_k"``, ``"q6_k"``; layouts and numpy decoding in ``quant_blocks``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from max.dialects.mo.dim import Dim
from max.dialects.mo.opdefs import reference as ref
from max.dialects.mo.opdefs.base import (
    STR,
    AttrDef,
    OpDef,
    TensorSig,
    TypeLike,
    TypeRuleError,
    same_device,
    shape_text,
    static,
)
from max.dialects.mo.opdefs.quant_blocks import BLOCKS
from max.dtype import DType


def block_shape(op: str, encoding: Any, x: TypeLike, name: str) -> tuple[int, int, int]:
    """(elements per block, bytes per block, elements per row) of a quantized operand."""
    if encoding not in BLOCKS:
        raise TypeRuleError(f"{op}: encoding {encoding!r} is not one of {sorted(BLOCKS)}")
    per_block, nbytes = BLOCKS[encoding]
    shapes = f"{name} {shape_text(x.shape)}"
    if x.dtype != DType.uint8:
        raise TypeRuleError(f"{op}: {encoding} operand {name} must be uint8 blocks, got "
                            f"{x.dtype.name} ({shapes})")
    last = static(x.shape[-1]) if x.shape else None
    if last is None or last % nbytes:
        raise TypeRuleError(f"{op}: {encoding} operand {name} {shape_text(x.shape)}: the last "
                            f"dim must be a static whole number of {nbytes}-byte blocks")
    return per_block, nbytes, last // nbytes * per_block


def _dequantize(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    (x,) = operands
    *_, k = block_shape(op, attrs["encoding"], x, "x")
    return TensorSig(DType.float32, (*x.shape[:-1], Dim(k)), x.device)


def _qmatmul(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    lhs, rhs = operands
    device = same_device(op, ("lhs", "rhs"), operands)
    shapes = f"lhs {shape_text(lhs.shape)}, rhs {shape_text(rhs.shape)}"
    if lhs.dtype != DType.float32:
        raise TypeRuleError(f"{op}: lhs must be float32, got {lhs.dtype.name} ({shapes})")
    if len(lhs.shape) < 2 or len(rhs.shape) != 2:
        raise TypeRuleError(f"{op}: lhs must have rank >= 2 and rhs rank 2 ({shapes})")
    if static(rhs.shape[0]) is None:
        raise TypeRuleError(f"{op}: rhs rows must be a static dim ({shapes})")
    *_, k = block_shape(op, attrs["encoding"], rhs, "rhs")
    if lhs.shape[-1] != k:
        raise TypeRuleError(f"{op}: the K dims differ: lhs has {lhs.shape[-1]}, rhs holds {k} "
                            f"elements a row in {attrs['encoding']} blocks ({shapes})")
    return TensorSig(DType.float32, (*lhs.shape[:-1], rhs.shape[0]), device)


def defs() -> list[OpDef]:
    encoding = (AttrDef("encoding", STR),)
    return [
        OpDef("mo.dequantize", ("x",), encoding, infer=_dequantize,
              reference=ref.REFERENCES["mo.dequantize"]),
        OpDef("mo.qmatmul", ("lhs", "rhs"), encoding, infer=_qmatmul,
              reference=ref.REFERENCES["mo.qmatmul"]),
    ]
