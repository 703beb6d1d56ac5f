"""``mo.gptq_dequantize`` and ``mo.gptq_qmatmul`` (and their ``_perm`` forms): GPTQ weights.

A GPTQ weight is MAX's packed operand, ``uint8 [K / 2 + 2 * K / group_size, N]`` (not
transposed: K runs down the rows). Its bytes, read in memory order, are two row-major arrays:

* ``qweight``: ``uint32 [K / 8, N]`` little-endian; bits ``4j..4j+3`` of word ``(i, n)`` hold
  the 4-bit code of weight ``(8i + j, n)`` (AutoGPTQ's packing along K);
* ``scales``: ``float16 [K / group_size, N]``, one scale per group of ``group_size`` rows.

Quantization is symmetric with zero point 8: ``W[k, n] = scales[k // group_size, n] *
(code[k, n] - 8)``. The ``_perm`` forms take ``perm`` (int32/int64 ``[K]``, MAX's ``perm_idx``,
``argsort(g_idx)`` for an act-order checkpoint): row ``p`` of the weight they use is
``scales[p // group_size] * (code[perm[p]] - 8)``, so a caller multiplies ``lhs[..., perm]``.

``group_size`` (int attribute) is a positive multiple of 8: a group is whole ``uint32`` rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from max.dialects.mo.dim import Dim
from max.dialects.mo.opdefs.base import (
    INT,
    AttrDef,
    OpDef,
    TensorSig,
    TypeLike,
    TypeRuleError,
    same_device,
    shape_text,
    static,
)
from max.dialects.mo.opdefs.reference import REFERENCES, FoldContext, Folder, NotFoldable
from max.dtype import DType


def packed_rows(k: int, group_size: int) -> int:
    """Rows of the packed operand of a ``[K, N]`` weight: K/2 of codes, 2K/group of scales."""
    return k // 2 + 2 * (k // group_size)


def gptq_k(op: str, packed: TypeLike, group_size: Any) -> tuple[int, int]:
    """(K, N) of a packed GPTQ operand; TypeRuleError naming what is wrong."""
    if type(group_size) is not int or group_size <= 0 or group_size % 8:
        raise TypeRuleError(f"{op}: group_size={group_size!r} must be a positive multiple of 8 "
                            "(a group is whole 32-bit words of eight 4-bit codes)")
    shapes = f"packed {shape_text(packed.shape)}"
    if packed.dtype != DType.uint8:
        raise TypeRuleError(f"{op}: the packed GPTQ weight must be uint8, got "
                            f"{packed.dtype.name} ({shapes})")
    if len(packed.shape) != 2:
        raise TypeRuleError(f"{op}: the packed GPTQ weight must have rank 2 ({shapes})")
    rows, n = static(packed.shape[0]), static(packed.shape[1])
    group_bytes = group_size // 2 + 2  # one group's codes and its float16 scale, per column
    if rows is None or n is None or rows == 0 or rows % group_bytes:
        raise TypeRuleError(
            f"{op}: the packed GPTQ weight {shape_text(packed.shape)} must have static dims and "
            f"a whole number of {group_bytes}-row groups (group_size {group_size}: "
            f"K/2 rows of codes and 2K/{group_size} rows of float16 scales)")
    return rows // group_bytes * group_size, n


def _perm_ok(op: str, perm: TypeLike, k: int) -> None:
    if perm.dtype not in (DType.int32, DType.int64) or len(perm.shape) != 1 or \
            static(perm.shape[0]) != k:
        raise TypeRuleError(f"{op}: perm must be int32 or int64 of shape [{k}] (K), got "
                            f"{perm.dtype.name} {shape_text(perm.shape)}")


def _dequantize(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    k, n = gptq_k(op, operands[0], attrs["group_size"])
    if len(operands) == 2:
        _perm_ok(op, operands[1], k)
        same_device(op, ("x", "perm"), operands)
    return TensorSig(DType.float32, (Dim(k), Dim(n)), operands[0].device)


def _qmatmul(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    lhs, rhs = operands[0], operands[1]
    names = ("lhs", "rhs", "perm")[:len(operands)]
    device = same_device(op, names, operands)
    k, n = gptq_k(op, rhs, attrs["group_size"])
    shapes = f"lhs {shape_text(lhs.shape)}, rhs {shape_text(rhs.shape)}"
    if lhs.dtype != DType.float32:
        raise TypeRuleError(f"{op}: lhs must be float32, got {lhs.dtype.name} ({shapes})")
    if len(lhs.shape) < 2:
        raise TypeRuleError(f"{op}: lhs must have rank >= 2 ({shapes})")
    if lhs.shape[-1] != k:
        raise TypeRuleError(f"{op}: the K dims differ: lhs has {lhs.shape[-1]}, rhs holds "
                            f"{k} rows at group_size {attrs['group_size']} ({shapes})")
    if len(operands) == 3:
        _perm_ok(op, operands[2], k)
    return TensorSig(DType.float32, (*lhs.shape[:-1], Dim(n)), device)


def dequantize_array(x: np.ndarray, group_size: int, perm: np.ndarray | None = None
                     ) -> np.ndarray:
    """The numpy reference: packed ``[rows, N]`` uint8 -> ``[K, N]`` float32."""
    rows, n = x.shape
    k = rows // (group_size // 2 + 2) * group_size
    flat = np.ascontiguousarray(x).reshape(-1)
    codes = flat[:k // 2 * n].reshape(k // 8, n, 4)  # the bytes of each uint32, low first
    nib = np.stack([codes & 15, codes >> 4], axis=-1)  # [K/8, N, 4, 2]: code j = 2b + h
    q = nib.transpose(0, 2, 3, 1).reshape(k, n)
    scales = flat[k // 2 * n:].view(np.float16).reshape(k // group_size, n).astype(np.float32)
    rows_of = np.arange(k) if perm is None else perm.astype(np.int64)
    if rows_of.size and (rows_of.min() < 0 or rows_of.max() >= k):
        raise ValueError("perm out of range")
    return scales[np.arange(k) // group_size] * (q[rows_of].astype(np.float32) - 8)


def _ref_dequantize(ctx: FoldContext, x: np.ndarray, perm: np.ndarray | None = None
                    ) -> np.ndarray:
    try:
        return dequantize_array(x, ctx.int("group_size"), perm)
    except ValueError as e:  # a perm out of range: reported by the compiled code's check
        raise NotFoldable(str(e)) from None


def _ref_qmatmul(ctx: FoldContext, lhs: np.ndarray, rhs: np.ndarray,
                 perm: np.ndarray | None = None) -> np.ndarray:
    return np.matmul(lhs, _ref_dequantize(ctx, rhs, perm))


REFERENCES.update({
    "mo.gptq_dequantize": Folder(_ref_dequantize),
    "mo.gptq_dequantize_perm": Folder(_ref_dequantize),
    "mo.gptq_qmatmul": Folder(_ref_qmatmul),
    "mo.gptq_qmatmul_perm": Folder(_ref_qmatmul),
})


def defs() -> list[OpDef]:
    group = (AttrDef("group_size", INT),)
    R = REFERENCES
    return [
        OpDef("mo.gptq_dequantize", ("x",), group, infer=_dequantize,
              reference=R["mo.gptq_dequantize"]),
        OpDef("mo.gptq_dequantize_perm", ("x", "perm"), group, infer=_dequantize,
              reference=R["mo.gptq_dequantize_perm"]),
        OpDef("mo.gptq_qmatmul", ("lhs", "rhs"), group, infer=_qmatmul,
              reference=R["mo.gptq_qmatmul"]),
        OpDef("mo.gptq_qmatmul_perm", ("lhs", "rhs", "perm"), group, infer=_qmatmul,
              reference=R["mo.gptq_qmatmul_perm"]),
    ]
