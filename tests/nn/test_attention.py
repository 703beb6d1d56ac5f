"""MultiheadAttention against torch.nn.MultiheadAttention(batch_first=True): with and
without biases, stacked QKV, an additive mask (causal plus padding), a symbolic batch and
sequence length; one compiled graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from nn_helpers import CPU, F32, close, compile_module, execute, tt

from max import nn
from max.graph import TensorValue

HEADS, HIDDEN = 3, 12


def _hf_names(ref: torch.nn.MultiheadAttention, stacked: bool) -> dict[str, np.ndarray]:
    """torch's in_proj (q, k, v stacked) and out_proj as Hugging Face names them."""
    out: dict[str, np.ndarray] = {}
    w = ref.in_proj_weight.detach().numpy()
    b = ref.in_proj_bias.detach().numpy() if ref.in_proj_bias is not None else None
    if stacked:
        out["qkv_proj.weight"] = w
        if b is not None:
            out["qkv_proj.bias"] = b
    else:
        for i, name in enumerate(["q_proj", "k_proj", "v_proj"]):
            out[f"{name}.weight"] = w[i * HIDDEN:(i + 1) * HIDDEN]
            if b is not None:
                out[f"{name}.bias"] = b[i * HIDDEN:(i + 1) * HIDDEN]
    out["o_proj.weight"] = ref.out_proj.weight.detach().numpy()
    if ref.out_proj.bias is not None:
        out["o_proj.bias"] = ref.out_proj.bias.detach().numpy()
    return out


VARIANTS = {  # name: (MultiheadAttention kwargs, torch bias, with a mask)
    "biased": (dict(qkv_has_bias=True, o_proj_has_bias=True), True, False),
    "plain": (dict(devices=[CPU], dtype=F32), False, True),
    "stacked": (dict(qkv_has_bias=True, o_proj_has_bias=True, stacked_qkv=True), True, True),
}


def _mask(batch: int, seq: int) -> torch.Tensor:
    """Causal, and the last sequence's last two tokens are padding."""
    mask = torch.triu(torch.full((seq, seq), -1e9), diagonal=1).expand(batch, 1, seq, seq)
    mask = mask.clone()
    mask[-1, :, :, seq - 2:] = -1e9
    mask[-1, :, :, 0] = 0.0
    return mask


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_attention_matches_torch(session: Any, variant: str) -> None:
    kwargs, bias, masked = VARIANTS[variant]
    ref = torch.nn.MultiheadAttention(HIDDEN, HEADS, bias=bias, batch_first=True)
    with torch.no_grad():  # torch initializes biases to zero
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    attn = nn.MultiheadAttention(HEADS, HIDDEN, **kwargs)
    attn.load_state_dict(_hf_names(ref, variant == "stacked"))

    def forward(m: nn.MultiheadAttention, x: TensorValue, mask: TensorValue) -> TensorValue:
        return m(x, attention_mask=mask) if masked else m(x)

    model = compile_module(session, attn, [tt("batch", "seq", HIDDEN),
                                           tt("batch", 1, "seq", "seq")], forward)
    for batch, seq in [(1, 1), (2, 6)]:
        x = torch.randn(batch, seq, HIDDEN)
        mask = _mask(batch, seq)
        out = execute(model, x.numpy(), mask.numpy())[0]
        torch_mask = mask.expand(batch, HEADS, seq, seq).reshape(batch * HEADS, seq, seq)
        with torch.no_grad():
            want = ref(x, x, x, attn_mask=torch_mask if masked else None,
                       need_weights=False)[0]
        close(out, want)


def test_two_biased_attentions_in_one_graph(session: Any) -> None:
    # Their projections' fills were merged by CSE after mo-dps-inits, and the epilogue
    # schedule then aborted the compiler (cast<scf::ForallOp> in MLIR's producer fusion).
    refs = [torch.nn.MultiheadAttention(HIDDEN, HEADS, batch_first=True) for _ in range(2)]
    with torch.no_grad():
        for ref in refs:
            for p in ref.parameters():
                p.copy_(torch.randn_like(p) * 0.3)
    pair = nn.LayerList([nn.MultiheadAttention(HEADS, HIDDEN, qkv_has_bias=True,
                                               o_proj_has_bias=True) for _ in range(2)])
    pair.load_state_dict({f"{i}.{k}": v for i, ref in enumerate(refs)
                          for k, v in _hf_names(ref, False).items()})
    model = compile_module(session, pair, [tt("batch", "seq", HIDDEN)],
                           lambda m, x: [layer(x) for layer in m])
    x = torch.randn(2, 5, HIDDEN)
    with torch.no_grad():
        for got, ref in zip(execute(model, x.numpy()), refs, strict=True):
            close(got, ref(x, x, x, need_weights=False)[0])


def test_attention_weights_and_errors() -> None:
    attn = nn.MultiheadAttention(4, 8, stacked_qkv=True)
    assert set(attn.raw_state_dict()) == {"qkv_proj.weight", "o_proj.weight"}
    assert attn.head_dim == 2 and attn.scale == pytest.approx(2 ** -0.5)
    assert nn.MultiheadAttention(4, 8, scale=0.1).scale == 0.1
    with pytest.raises(ValueError, match=r"hidden_size \(10\) must be divisible by "
                                         r"num_attention_heads \(4\)"):
        nn.MultiheadAttention(4, 10)
