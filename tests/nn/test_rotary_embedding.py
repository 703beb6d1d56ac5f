"""RotaryEmbedding (interleaved: Meta's complex product; not interleaved: Hugging Face's
rotate_half) and Llama3RotaryEmbedding's frequency scaling, against PyTorch references
written here in float64, with a symbolic sequence length and a start position; one graph."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from nn_helpers import close, compile_module, execute, tt

from max import nn
from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorValue, ops

HEADS, HEAD_DIM, MAX_SEQ, THETA = 3, 10, 16, 10000.0
LLAMA3 = nn.Llama3RopeScalingParams(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                    orig_max_position=64)  # one frequency of each kind


def inv_freqs(scaling: nn.Llama3RopeScalingParams | None = None) -> torch.Tensor:
    """As Hugging Face's default and llama3 rope initializations, in float64."""
    inv = 1.0 / THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float64) / HEAD_DIM)
    if scaling is None:
        return inv
    low = scaling.orig_max_position / scaling.low_freq_factor
    high = scaling.orig_max_position / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > low, inv / scaling.factor, inv)
    smooth = (scaling.orig_max_position / wavelen - scaling.low_freq_factor) / (
        scaling.high_freq_factor - scaling.low_freq_factor)
    smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    medium = (wavelen >= high) & (wavelen <= low)
    return torch.where(medium, smoothed, scaled)


def rope_complex(x: torch.Tensor, inv: torch.Tensor, start: int) -> torch.Tensor:
    """Meta's apply_rotary_emb: adjacent pairs as complex numbers."""
    pos = torch.arange(start, start + x.shape[1], dtype=torch.float64)
    freqs = torch.polar(torch.ones(len(pos), len(inv), dtype=torch.float64),
                        torch.outer(pos, inv))
    xc = torch.view_as_complex(x.double().reshape(*x.shape[:-1], -1, 2))
    out = torch.view_as_real(xc * freqs[None, :, None, :]).flatten(3)
    return out.float()


def rope_half(x: torch.Tensor, inv: torch.Tensor, start: int) -> torch.Tensor:
    """Hugging Face's apply_rotary_pos_emb: x * cos + rotate_half(x) * sin."""
    pos = torch.arange(start, start + x.shape[1], dtype=torch.float64)
    emb = torch.cat([torch.outer(pos, inv)] * 2, dim=-1)[None, :, None, :]
    x = x.double()
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * emb.cos() + rotated * emb.sin()).float()


class Ropes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        dim = HEADS * HEAD_DIM
        self.meta = nn.RotaryEmbedding(dim, HEADS, THETA, MAX_SEQ)
        self.hf = nn.RotaryEmbedding(dim, HEADS, THETA, MAX_SEQ, interleaved=False)
        self.llama3 = nn.Llama3RotaryEmbedding(dim, HEADS, THETA, MAX_SEQ,
                                               interleaved=False, scaling_params=LLAMA3)

    def __call__(self, x: TensorValue, xs: TensorValue) -> list[TensorValue]:
        return [self.meta(x), self.hf(x), self.llama3(x),
                self.meta(xs, start_pos=5), self.hf(xs, start_pos=5),
                self.meta(x, start_pos=x.shape[1])]  # a symbolic start


def test_rope_matches_torch(session: Any) -> None:
    model = compile_module(session, Ropes(), [tt("batch", "seq_len", HEADS, HEAD_DIM),
                                              tt(2, 7, HEADS, HEAD_DIM)])
    plain, scaled = inv_freqs(), inv_freqs(LLAMA3)
    assert not torch.allclose(plain, scaled)  # the scaling changes some frequencies
    xs = torch.randn(2, 7, HEADS, HEAD_DIM)
    for batch, seq in [(1, 1), (2, 9)]:
        x = torch.randn(batch, seq, HEADS, HEAD_DIM)
        out = execute(model, x.numpy(), xs.numpy())
        close(out[0], rope_complex(x, plain, 0))
        close(out[1], rope_half(x, plain, 0))
        close(out[2], rope_half(x, scaled, 0))
        close(out[3], rope_complex(xs, plain, 5))
        close(out[4], rope_half(xs, plain, 5))
        close(out[5], rope_complex(x, plain, seq))


class RowPositions(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        dim = HEADS * HEAD_DIM
        self.meta = nn.RotaryEmbedding(dim, HEADS, THETA, MAX_SEQ)
        self.hf = nn.RotaryEmbedding(dim, HEADS, THETA, MAX_SEQ, interleaved=False)

    def __call__(self, x: TensorValue, positions: TensorValue) -> list[TensorValue]:
        return [self.meta(x, positions=positions), self.hf(x, positions=positions)]


def test_rope_at_each_rows_own_positions(session: Any) -> None:
    """Row b at positions starts[b] .. starts[b] + seq - 1: each row as the torch reference
    with that row's start."""
    model = compile_module(session, RowPositions(), [
        tt("batch", "seq_len", HEADS, HEAD_DIM), tt("batch", "seq_len", dtype=DType.int64)])
    plain = inv_freqs()
    for starts, seq in [([0, 7, 3], 1), ([2, 0], 5)]:
        x = torch.randn(len(starts), seq, HEADS, HEAD_DIM)
        positions = np.array([[s + t for t in range(seq)] for s in starts], np.int64)
        meta, hf = execute(model, x.numpy(), positions)
        for b, s in enumerate(starts):
            close(meta[b:b + 1], rope_complex(x[b:b + 1], plain, s))
            close(hf[b:b + 1], rope_half(x[b:b + 1], plain, s))


def test_rope_tables_and_scale() -> None:
    rope = nn.RotaryEmbedding(64, 4, THETA, MAX_SEQ)
    assert rope.head_dim == 16 and rope.compute_scale() == pytest.approx(0.25)
    assert rope.compute_scale(0.5) == 0.5
    with Graph("tables", input_types=[]):
        assert [int(d) for d in rope.freqs_cis_base().shape] == [2 * MAX_SEQ, 8, 2]
        assert [int(d) for d in rope.freqs_cis.shape] == [2 * MAX_SEQ, 16]
    table = rope._table()
    given = nn.RotaryEmbedding(64, 4, THETA, MAX_SEQ, _freqs_cis=table[:5])
    with Graph("given", input_types=[]):
        assert [int(d) for d in given.freqs_cis_base().shape] == [5, 8, 2]
    np.testing.assert_allclose(table[3, 1], [math.cos(3 * THETA ** (-2 / 16)),
                                             math.sin(3 * THETA ** (-2 / 16))], rtol=1e-6)


def test_rope_bad_input() -> None:
    with pytest.raises(ValueError, match="head_dim must be a positive even int, got 5"):
        nn.RotaryEmbedding(15, 3, THETA, MAX_SEQ)
    rope = nn.RotaryEmbedding(HEADS * HEAD_DIM, HEADS, THETA, 4)
    with Graph("bad", input_types=[tt(1, 3, HEADS, 8), tt(1, 3, HEADS, HEAD_DIM)]) as g:
        with pytest.raises(ValueError, match=r"expected an input \(batch, seq_len, n_heads, "
                                             r"10\)"):
            rope(g.inputs[0])
        with pytest.raises(ValueError, match=r"positions 6..8 are past the table's 8"):
            rope(g.inputs[1], start_pos=6)
        with pytest.raises(ValueError, match=r"positions must have shape \(batch, seq_len\) = "
                                             r"\['1', '3'\] of a rank-4 input, got \['3'\]"):
            rope(g.inputs[1], positions=ops.range(0, 3, 1, dtype=DType.int64,
                                                  device=DeviceRef.CPU()))
