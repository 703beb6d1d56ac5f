"""clamp against torch.clamp: both bounds, one bound, min > max, NaN and infinities."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from nn_helpers import close, execute, tt

from max import nn
from max.graph import Graph


def test_clamp_matches_torch(session: Any) -> None:
    with Graph("clamp", input_types=[tt("n", 3)]) as g:
        (x,) = g.inputs
        g.output(nn.clamp(x, -0.5, 0.75), nn.clamp(x, min=0.0), nn.clamp(x, max=-1.0),
                 nn.clamp(x, 1.0, -1.0), nn.clamp(x))
    model = session.load(g)
    x = torch.randn(5, 3) * 2
    x[0] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    out = execute(model, x.numpy())
    for got, (lo, hi) in zip(out, [(-0.5, 0.75), (0.0, None), (None, -1.0), (1.0, -1.0),
                                   (None, None)], strict=True):
        want = x if lo is None and hi is None else torch.clamp(x, lo, hi)
        close(got, want, rtol=0, atol=0)
    assert np.isnan(out[0][0, 0])
