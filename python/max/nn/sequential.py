"""A General sequential layer, each layer is executed with the outputs of the previous."""

from __future__ import annotations

from typing import Any

from max.nn.layer import LayerList


class Sequential(LayerList):
    """A sequential stack of layers where each layer is called by the outputs of the
    previous layer.

    Its layers are named by position, as in ``torch.nn.Sequential`` (``0.weight``,
    ``1.bias``, ...).

    Args:
        layers: The layers, called in order.
    """

    def __call__(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x
