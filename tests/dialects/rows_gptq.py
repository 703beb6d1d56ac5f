"""Numeric rows of the GPTQ ops: expected values unpacked with PyTorch's integer ops from the
packed operand's two arrays (``int32 [K/8, N]`` codes, ``float16 [K/group, N]`` scales)."""

from __future__ import annotations

import numpy as np
import torch
from mo_op_rows import RNG, Row, f32


def _packed(k: int, n: int, group: int) -> np.ndarray:
    words = RNG.integers(0, 2**32, (k // 8, n), dtype=np.uint64).astype("<u4")
    scales = RNG.uniform(-0.05, 0.05, (k // group, n)).astype("<f2")
    return np.concatenate([words.view(np.uint8).reshape(k // 2, n),
                           scales.view(np.uint8).reshape(2 * (k // group), n)])


def _weight(packed: np.ndarray, group: int, perm: np.ndarray | None = None) -> torch.Tensor:
    rows, n = packed.shape
    k = rows // (group // 2 + 2) * group
    raw = torch.from_numpy(np.ascontiguousarray(packed)).reshape(-1)
    words = raw[:k // 2 * n].view(torch.int32).reshape(k // 8, n)
    shifts = torch.arange(0, 32, 4, dtype=torch.int32).reshape(1, 8, 1)
    codes = ((words.unsqueeze(1) >> shifts) & 15).reshape(k, n)  # row 8i + j: bits 4j..
    scales = raw[k // 2 * n:].view(torch.float16).reshape(k // group, n).float()
    if perm is not None:
        codes = codes[torch.from_numpy(perm).long()]
    return scales.repeat_interleave(group, dim=0) * (codes.float() - 8)


_P64 = _packed(128, 5, 64)
_P32 = _packed(64, 3, 32)
_PERM = RNG.permutation(128).astype(np.int32)
_PERM32 = RNG.permutation(64).astype(np.int64)


def _qmm(group: int):  # type: ignore[no-untyped-def]
    def expected(a: np.ndarray, w: np.ndarray, perm: np.ndarray | None = None) -> np.ndarray:
        return (torch.from_numpy(a).double() @ _weight(w, group, perm).double()).float().numpy()

    return expected


ROWS: dict[str, list[Row]] = {
    "mo.gptq_dequantize": [
        Row((_P64,), lambda w: _weight(w, 64).numpy(), {"group_size": 64}, rtol=0, atol=0),
        Row((_P32,), lambda w: _weight(w, 32).numpy(), {"group_size": 32}, rtol=0, atol=0),
    ],
    "mo.gptq_dequantize_perm": [
        Row((_P64, _PERM), lambda w, p: _weight(w, 64, p).numpy(), {"group_size": 64},
            rtol=0, atol=0),
    ],
    "mo.gptq_qmatmul": [
        Row((f32(3, 128), _P64), _qmm(64), {"group_size": 64}, rtol=1e-5, atol=1e-5),
        Row((f32(2, 2, 64), _P32), _qmm(32), {"group_size": 32}, rtol=1e-5, atol=1e-5),
    ],
    "mo.gptq_qmatmul_perm": [
        Row((f32(4, 64), _P32, _PERM32), _qmm(32), {"group_size": 32}, rtol=1e-5, atol=1e-5),
    ],
}
