"""LayerNorm, RMSNorm (Llama and Gemma styles), GroupNorm and ConstantLayerNorm against
PyTorch, with symbolic batch and sequence dims and odd sizes; one compiled graph."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from nn_helpers import CPU, F32, close, compile_module, execute, torch_state, tt

from max import nn
from max.graph import Graph, TensorValue

DIM, CH, GROUPS = 19, 6, 3


class Norms(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(DIM, [CPU], F32, eps=1e-5)
        self.ln_nobias = nn.LayerNorm(DIM, [CPU], F32, eps=0.1, use_bias=False)
        self.rms = nn.RMSNorm(DIM, F32, eps=0.25)
        self.rms_gemma = nn.RMSNorm(DIM, F32, eps=1e-6, weight_offset=1.0,
                                    multiply_before_cast=False)
        self.const = nn.ConstantLayerNorm(DIM, CPU, F32)
        self.gn = nn.GroupNorm(GROUPS, CH, eps=0.5, device=CPU)  # an eps that shows
        self.gn_plain = nn.GroupNorm(GROUPS, CH, affine=False, device=CPU)

    def __call__(self, x: TensorValue, img: TensorValue, seq: TensorValue) -> list[TensorValue]:
        return [self.ln(x), self.ln_nobias(x), self.rms(x), self.rms_gemma(x), self.const(x),
                self.gn(img), self.gn(seq), self.gn_plain(img)]


def test_norms_match_torch(session: Any) -> None:
    ln = torch.nn.LayerNorm(DIM)
    ln_nobias = torch.nn.LayerNorm(DIM, eps=0.1, bias=False)
    rms = torch.nn.RMSNorm(DIM, eps=0.25)
    gn = torch.nn.GroupNorm(GROUPS, CH, eps=0.5)
    gemma_w = torch.randn(DIM) * 0.1
    with torch.no_grad():  # away from the defaults (ones and zeros)
        for p in [*ln.parameters(), *ln_nobias.parameters(), *rms.parameters(),
                  *gn.parameters()]:
            p.copy_(torch.randn_like(p))
    norms = Norms()
    state = {**torch_state(ln, "ln."), **torch_state(ln_nobias, "ln_nobias."),
             **torch_state(rms, "rms."), **torch_state(gn, "gn."),
             "rms_gemma.weight": gemma_w.numpy()}
    norms.load_state_dict(state)
    model = compile_module(session, norms, [tt("batch", "seq", DIM), tt("n", CH, 5, 3),
                                            tt("n2", CH, "len")])
    for batch, seq in [(1, 1), (2, 9)]:
        x = torch.randn(batch, seq, DIM) * 3 + 1
        img = torch.randn(batch + 1, CH, 5, 3) * 2 - 1
        sq = torch.randn(batch, CH, seq + 2)
        out = execute(model, x.numpy(), img.numpy(), sq.numpy())
        with torch.no_grad():
            close(out[0], ln(x))
            close(out[1], ln_nobias(x))
            close(out[2], rms(x))
            gemma = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (1 + gemma_w)
            close(out[3], gemma)
            close(out[4], F.layer_norm(x, (DIM,)))
            close(out[5], gn(img))
            close(out[6], gn(sq))
            close(out[7], F.group_norm(img, GROUPS))


def test_norm_bad_input() -> None:
    with pytest.raises(ValueError, match=r"num_channels \(7\) must be divisible by num_groups"):
        nn.GroupNorm(3, 7)
    with Graph("bad", input_types=[tt(2, 4, 5)]) as g:
        with pytest.raises(ValueError, match=r"GroupNorm: expected an input \(N, 6, ...\)"):
            nn.GroupNorm(3, 6)(g.inputs[0])
        with pytest.raises(ValueError, match=r"LayerNorm: expected an input whose last dims "
                                             r"are \[7\]"):
            nn.LayerNorm(7, [CPU], F32)(g.inputs[0])
        with pytest.raises(ValueError, match="RMSNorm: expected an input whose last dim is 3"):
            nn.RMSNorm(3, F32)(g.inputs[0])
