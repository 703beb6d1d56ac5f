"""GGUF block layouts and their numpy decoding: the reference of ``mo.dequantize``/``mo.qmatmul``.

A quantized tensor is ``uint8`` whose last dim holds whole blocks of an encoding's GGUF byte
layout. The decoding follows ggml's ``dequantize_row_*`` element by element (vectorized over
rows and blocks), in the same f32 operation order as the ``gguf`` package, so that results
are bit-identical to it. It imports nothing of ours: the reference table and the op
definitions both read it.
"""

from __future__ import annotations

import numpy as np

# encoding attribute -> (elements per block, bytes per block), as ggml's GGML_QUANT_SIZES.
BLOCKS: dict[str, tuple[int, int]] = {
    "q4_0": (32, 18), "q4_1": (32, 20), "q8_0": (32, 34),
    "q4_k": (256, 144), "q5_k": (256, 176), "q6_k": (256, 210),
}


def _f16(b: np.ndarray, at: int) -> np.ndarray:
    """The little-endian float16 at byte ``at`` of each block, as float32 (exact)."""
    return np.ascontiguousarray(b[..., at:at + 2]).view(np.float16)[..., 0].astype(np.float32)


def _k_scales(b: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """The 6-bit scale and min of sub-block ``s`` (0..7) of Q4_K/Q5_K (ggml get_scale_min_k4)."""
    t = s % 4
    if s < 4:
        return b[..., 4 + t] & 63, b[..., 8 + t] & 63
    return ((b[..., 12 + t] & 15) | ((b[..., 4 + t] >> 2) & 0x30),
            (b[..., 12 + t] >> 4) | ((b[..., 8 + t] >> 2) & 0x30))


def decode_blocks(encoding: str, b: np.ndarray) -> np.ndarray:
    """[..., nbytes] uint8 blocks -> [..., per_block] float32, ggml's formulas per element."""
    per_block, _ = BLOCKS[encoding]
    j = np.arange(per_block)
    d = _f16(b, 208 if encoding == "q6_k" else 0)[..., None]
    if encoding in ("q4_0", "q4_1"):
        head = 2 if encoding == "q4_0" else 4
        q = (b[..., head + j % 16] >> (4 * (j // 16))) & 15
        if encoding == "q4_0":
            return d * (q.astype(np.int32) - 8).astype(np.float32)
        return d * q.astype(np.float32) + _f16(b, 2)[..., None]
    if encoding == "q8_0":
        return b[..., 2 + j].view(np.int8).astype(np.float32) * d
    if encoding in ("q4_k", "q5_k"):
        s, i = j // 32, j % 32
        scales, mins = (np.stack(x, -1) for x in zip(*(_k_scales(b, v) for v in range(8))))
        ds = d * scales.astype(np.float32)  # [..., 8]: one scale and min per 32 elements
        dm = _f16(b, 2)[..., None] * mins.astype(np.float32)
        qs_at = 16 if encoding == "q4_k" else 48
        q = (b[..., qs_at + (s // 2) * 32 + i] >> (4 * (s % 2))) & 15
        if encoding == "q5_k":
            q = q | (((b[..., 16 + i] >> s) & 1) << 4)
        return ds[..., s] * q.astype(np.float32) - dm[..., s]
    if encoding == "q6_k":
        a, r, i = j // 128, j % 128, j % 32
        low = (b[..., a * 64 + r % 64] >> (4 * (r // 64))) & 15
        high = (b[..., 128 + a * 32 + i] >> (2 * (r // 32))) & 3
        q = (low | (high << 4)).astype(np.int32) - 32
        sc = b[..., 192 + j // 16].view(np.int8).astype(np.float32)
        return (d * sc) * q.astype(np.float32)
    raise ValueError(f"unknown encoding {encoding!r}")


def dequantize_array(encoding: str, x: np.ndarray) -> np.ndarray:
    """[..., nblocks * nbytes] uint8 -> [..., nblocks * per_block] float32."""
    per_block, nbytes = BLOCKS[encoding]
    blocks = x.reshape(*x.shape[:-1], x.shape[-1] // nbytes, nbytes)
    out = decode_blocks(encoding, blocks)
    return out.reshape(*x.shape[:-1], x.shape[-1] // nbytes * per_block).astype(np.float32)
