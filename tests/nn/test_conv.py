"""Conv1D, Conv2d, Conv3D and ConvTranspose1d against PyTorch: MAX layouts (channels-last
input, filters converted from PyTorch's in the test) and ``permute=True`` (PyTorch's
layouts, its state dict loaded as is); strides, padding, dilation, groups, bias, a symbolic
batch; one compiled graph."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from nn_helpers import F32, close, compile_module, execute, torch_state, tt

from max import nn
from max.graph import Graph, TensorValue

L, H, W, D = 11, 9, 7, 5


def _refs() -> dict[str, torch.nn.Module]:
    return {
        "c1": torch.nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2),
        "c1p": torch.nn.Conv1d(4, 5, 4, padding=2, bias=False),
        "c2": torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2),
                              groups=2),
        "c2p": torch.nn.Conv2d(4, 3, 3, padding=1, bias=False),
        "c3": torch.nn.Conv3d(2, 4, (2, 3, 2), stride=(1, 2, 1), padding=(1, 0, 1)),
        "c3p": torch.nn.Conv3d(2, 3, 2, bias=False),
        "t1": torch.nn.ConvTranspose1d(4, 3, 3, stride=2, padding=1, output_padding=1,
                                       dilation=2),
        "t1p": torch.nn.ConvTranspose1d(4, 5, 4, stride=3, output_padding=2),
    }


class Convs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1D(3, 4, 6, F32, stride=2, padding=1, dilation=2, num_groups=2,
                            has_bias=True)
        self.c1p = nn.Conv1D(4, 4, 5, F32, padding=2, permute=True)
        self.c2 = nn.Conv2d((3, 2), 4, 6, F32, stride=(2, 1), padding=(1, 0),
                            dilation=(1, 2), num_groups=2, has_bias=True, name="conv")
        self.c2p = nn.Conv2d(3, 4, 3, F32, padding=1, permute=True)
        self.c3 = nn.Conv3D(2, 3, 2, 2, 4, F32, stride=(1, 2, 1), padding=(1, 1, 0, 0, 1, 1),
                            has_bias=True)
        self.c3p = nn.Conv3D(2, 2, 2, 2, 3, F32, permute=True)
        self.t1 = nn.ConvTranspose1d(3, 4, 3, F32, stride=2, padding=1, output_padding=1,
                                     dilation=2, has_bias=True)
        self.t1p = nn.ConvTranspose1d(4, 4, 5, F32, stride=3, output_padding=2,
                                      has_bias=True, permute=True)

    def __call__(self, x1: TensorValue, x2: TensorValue, x3: TensorValue,
                 x1c: TensorValue, x2c: TensorValue, x3c: TensorValue) -> list[TensorValue]:
        return [self.c1(x1), self.c1p(x1c), self.c2(x2), self.c2p(x2c), self.c3(x3),
                self.c3p(x3c), self.t1(x1), self.t1p(x1c)]


def _max_state(refs: dict[str, torch.nn.Module]) -> dict[str, Any]:
    """PyTorch's weights in MAX's layouts for the layers without permute."""
    def w(name: str, order: list[int]) -> Any:
        return refs[name].weight.detach().permute(*order).contiguous().numpy()

    state = {"c1.weight": w("c1", [2, 1, 0]), "conv.weight": w("c2", [2, 3, 1, 0]),
             "c3.weight": w("c3", [2, 3, 4, 1, 0]), "t1.weight": w("t1", [2, 1, 0])}
    for name, key in [("c1", "c1.bias"), ("c2", "conv.bias"), ("c3", "c3.bias"),
                      ("t1", "t1.bias")]:
        state[key] = refs[name].bias.detach().numpy()
    return state


def test_convolutions_match_torch(session: Any) -> None:
    refs = _refs()
    convs = Convs()
    state = {("c2." + k if k.startswith("conv.") else k): v
             for k, v in _max_state(refs).items()}
    for name in ("c1p", "c2p", "c3p", "t1p"):  # permute=True: PyTorch's state dict as is
        state.update(torch_state(refs[name], f"{name}."))
    convs.load_state_dict(state)
    model = compile_module(session, convs, [
        tt("n", L, 4), tt("n", H, W, 4), tt("n", D, H, W, 2),
        tt("n", 4, L), tt("n", 4, H, W), tt("n", 2, D, H, W)])
    for n in (1, 3):
        x1, x2, x3 = torch.randn(n, 4, L), torch.randn(n, 4, H, W), torch.randn(n, 2, D, H, W)
        out = execute(model, x1.permute(0, 2, 1).contiguous().numpy(),
                      x2.permute(0, 2, 3, 1).contiguous().numpy(),
                      x3.permute(0, 2, 3, 4, 1).contiguous().numpy(),
                      x1.numpy(), x2.numpy(), x3.numpy())
        with torch.no_grad():
            close(out[0], refs["c1"](x1).permute(0, 2, 1))
            close(out[1], refs["c1p"](x1))
            close(out[2], refs["c2"](x2).permute(0, 2, 3, 1))
            close(out[3], refs["c2p"](x2))
            close(out[4], refs["c3"](x3).permute(0, 2, 3, 4, 1))
            close(out[5], refs["c3p"](x3))
            close(out[6], refs["t1"](x1).permute(0, 2, 1))
            close(out[7], refs["t1p"](x1))


def test_weight_names_and_layouts() -> None:
    raw = Convs().raw_state_dict()
    shapes = {k: [int(d) for d in w.shape] for k, w in raw.items()}
    assert shapes["c2.conv.weight"] == [3, 2, 2, 6]  # RSCF: (H, W, C/g, O)
    assert shapes["c2p.weight"] == [3, 4, 3, 3]  # PyTorch's (O, C/g, H, W)
    assert shapes["c3.weight"] == [2, 3, 2, 2, 4]
    assert shapes["t1.weight"] == [3, 3, 4]  # (K, out, in)
    assert shapes["t1p.weight"] == [4, 5, 4]  # PyTorch's (in, out, K)


def test_asymmetric_padding_matches_padded_torch(session: Any) -> None:
    conv = nn.Conv2d(2, 3, 2, F32, padding=(0, 2, 1, 0), permute=True)
    ref = torch.nn.Conv2d(3, 2, 2, bias=False)
    conv.load_state_dict(torch_state(ref))
    model = compile_module(session, conv, [tt(2, 3, 5, 4)])
    x = torch.randn(2, 3, 5, 4)
    with torch.no_grad():  # F.pad's order: (left, right, top, bottom)
        close(execute(model, x.numpy())[0], ref(F.pad(x, (1, 0, 0, 2))))


def test_conv_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"in_channels \(3\) and out_channels \(4\) must be "
                                         r"divisible by num_groups \(2\)"):
        nn.Conv2d(3, 3, 4, F32, num_groups=2)
    with pytest.raises(ValueError, match="stride must be an int >= 1 or a tuple of 2"):
        nn.Conv2d(3, 3, 4, F32, stride=(1, 2, 3))
    with pytest.raises(ValueError, match=r"output_padding \(2\) must be smaller than"):
        nn.ConvTranspose1d(3, 2, 2, F32, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="padding must be an int >= 0 or a tuple of 6"):
        nn.Conv3D(1, 1, 1, 2, 2, F32, padding=(1, 2, 3, 4))
    with Graph("bad", input_types=[tt(2, 5, 3)]) as g:
        with pytest.raises(ValueError, match="expected a rank-4 channels-last input"):
            nn.Conv2d(3, 3, 4, F32)(g.inputs[0])
