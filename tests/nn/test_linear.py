"""Linear and MLP against PyTorch (the same weights, symbolic batch and sequence dims, odd
sizes), every MLP activation, clip_weight, and GGUF-quantized Linear against gguf's own
dequantization; all in one compiled graph."""

from __future__ import annotations

from typing import Any

import gguf
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nn_helpers import CPU, F32, close, compile_module, execute, torch_state, tt

from max import nn
from max.graph import TensorValue
from max.graph.quantization import QuantizationEncoding

HIDDEN, FFN = 13, 22
ACTIVATIONS = {
    "silu": F.silu, "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
}
QUANTIZED = {QuantizationEncoding.Q8_0: gguf.GGMLQuantizationType.Q8_0,
             QuantizationEncoding.Q4_0: gguf.GGMLQuantizationType.Q4_0}
QIN = 64  # two blocks per row


class TorchMLP(torch.nn.Module):
    def __init__(self, act: Any, bias: bool) -> None:
        super().__init__()
        self.gate_proj = torch.nn.Linear(HIDDEN, FFN, bias=bias)
        self.down_proj = torch.nn.Linear(FFN, HIDDEN, bias=bias)
        self.up_proj = torch.nn.Linear(HIDDEN, FFN, bias=bias)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class Layers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.plain = nn.Linear(HIDDEN, 7, F32, CPU, has_bias=True)
        self.named = nn.Linear(HIDDEN, 7, F32, CPU, name="proj")
        self.clipped = nn.Linear(HIDDEN, 7, F32, CPU, clip_weight=0.1)
        self.mlps = nn.LayerList([
            nn.MLP(F32, None, HIDDEN, FFN, [CPU], activation_function=act,
                   has_bias=(i % 2 == 0)) for i, act in enumerate(ACTIVATIONS)])
        self.quantized = nn.LayerList([nn.Linear(QIN, 5, F32, CPU, quantization_encoding=enc)
                                       for enc in QUANTIZED])

    def __call__(self, x: TensorValue, xq: TensorValue) -> list[TensorValue]:
        return [self.plain(x), self.named(x), self.clipped(x),
                *(mlp(x) for mlp in self.mlps), *(q(xq) for q in self.quantized)]


@pytest.fixture(scope="module")
def compiled(session: Any) -> tuple[Any, dict[str, Any], Layers]:
    torch.manual_seed(1)
    refs: dict[str, Any] = {
        "plain": torch.nn.Linear(HIDDEN, 7), "named": torch.nn.Linear(HIDDEN, 7, bias=False),
        "clipped": torch.nn.Linear(HIDDEN, 7, bias=False),
        "mlps": [TorchMLP(act, bias=(i % 2 == 0))
                 for i, act in enumerate(ACTIVATIONS.values())],
    }
    state = {**torch_state(refs["plain"], "plain."),
             "named.proj.weight": refs["named"].weight.detach().numpy(),
             "clipped.weight": refs["clipped"].weight.detach().numpy()}
    for i, mlp in enumerate(refs["mlps"]):
        state.update(torch_state(mlp, f"mlps.{i}."))
    rng = np.random.default_rng(2)
    refs["quantized"] = []
    for i, qtype in enumerate(QUANTIZED.values()):
        w = rng.standard_normal((5, QIN)).astype(np.float32)
        blocks = gguf.quants.quantize(w, qtype)
        state[f"quantized.{i}.weight"] = blocks
        refs["quantized"].append(gguf.quants.dequantize(blocks, qtype))
    layers = Layers()
    layers.load_state_dict(state)
    model = compile_module(session, layers, [tt("batch", "seq", HIDDEN), tt("rows", QIN)])
    return model, refs, layers


@pytest.mark.parametrize("batch, seq", [(1, 1), (3, 5)])
def test_linear_and_mlp_match_torch(compiled: Any, batch: int, seq: int) -> None:
    model, refs, _ = compiled
    x = torch.randn(batch, seq, HIDDEN)
    xq = torch.randn(4, QIN)
    out = execute(model, x.numpy(), xq.numpy())
    with torch.no_grad():
        close(out[0], refs["plain"](x))
        close(out[1], refs["named"](x))
        close(out[2], x @ refs["clipped"].weight.clamp(-0.1, 0.1).T)
        for got, mlp in zip(out[3:3 + len(ACTIVATIONS)], refs["mlps"], strict=True):
            close(got, mlp(x))
        for got, w in zip(out[3 + len(ACTIVATIONS):], refs["quantized"], strict=True):
            # qmatmul is the float32 product with the dequantized weight
            close(got, (xq.double() @ torch.from_numpy(w).double().T).float(), rtol=1e-4,
                  atol=1e-4)


def test_weight_names_and_shapes(compiled: Any) -> None:
    _, _, layers = compiled
    raw = layers.raw_state_dict()
    assert "named.proj.weight" in raw and "named.proj.bias" not in raw
    assert "mlps.0.gate_proj.bias" in raw and "mlps.1.gate_proj.bias" not in raw
    q = raw["quantized.1.weight"]  # Q4_0: 18 bytes for each 32 elements
    assert [int(d) for d in q.shape] == [5, 36]
    assert q.quantization_encoding == QuantizationEncoding.Q4_0
    assert [int(d) for d in q.original_dtype_and_shape[1]] == [5, QIN]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown activation_function 'swish'"):
        nn.MLP(F32, None, 4, 8, [CPU], activation_function="swish")
    with pytest.raises(ValueError, match="in_dim must be a positive int"):
        nn.Linear(0, 3, F32, CPU)
    with pytest.raises(ValueError, match="in_dim 40 is not a multiple of the q8_0 block"):
        nn.Linear(40, 3, F32, CPU, quantization_encoding=QuantizationEncoding.Q8_0)
    with pytest.raises(ValueError, match="devices must name at least one device"):
        nn.MLP(F32, None, 4, 8, [])
