"""``ConvTranspose1d``: a 1-D transposed convolution, run as ``ops.conv2d_transpose`` of
height 1.

Without ``permute`` the input is ``(batch, length, in_channels)`` and the weight
``(kernel_length, out_channels, in_channels)``; with ``permute=True`` both follow
``torch.nn.ConvTranspose1d``: input ``(batch, in_channels, length)`` (and the output
channels-first too), weight ``(in_channels, out_channels, kernel_length)``.
"""

from __future__ import annotations

from typing import Any

from max.dtype import DType
from max.graph import DeviceRef, TensorValue, Weight, ops
from max.nn.layer import Module


def _pair(what: str, arg: str, value: Any, low: int) -> tuple[int, int]:
    """A 1-D hyperparameter in the (height, width) form of the 2-D op: an int ``v`` is
    ``(1 or 0, v)``; a pair is taken as the 2-D value, as the reference types it."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < low:
            raise ValueError(f"{what}: {arg} must be >= {low}, got {value}")
        return (1 if low else 0, value)
    if (isinstance(value, tuple | list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= low
                    for v in value)):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{what}: {arg} must be an int >= {low} or a pair of them, got {value!r}")


class ConvTranspose1d(Module):
    """A 1D transposed convolution operator over an input image composed of several input
    planes.

    Args:
        length: The length of the convolution kernel.
        in_channels: Number of channels in the input image.
        out_channels: Number of channels produced by the convolution.
        dtype: The data type for weights and bias.
        stride: Stride of the convolution. Default: 1.
        padding: Padding removed from both ends of the output (an int, or the 4-tuple
            ``(0, 0, before, after)`` of the 2-D op). Default: 0.
        dilation: Spacing between kernel elements. Default: 1.
        output_padding: Additional size added to one side of the output shape. Default: 0.
        device: The target device for computation.
        has_bias: When True, adds a bias vector. Default: False.
        permute: Whether to permute weights between PyTorch and MAX format. PyTorch order
            is (in_channels, out_channels, kernel_length); Max API order is (kernel_length,
            out_channels, in_channels).
        name: Base name for weights: ``{name}.weight`` and ``{name}.bias``.
    """

    def __init__(self, length: int, in_channels: int, out_channels: int, dtype: DType,
                 stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int, int, int] = 0,
                 dilation: int | tuple[int, int] = 1,
                 output_padding: int | tuple[int, int] = 0, device: DeviceRef | None = None,
                 has_bias: bool = False, permute: bool = False,
                 name: str | None = None) -> None:
        super().__init__()
        what = "ConvTranspose1d"
        for arg, value in (("length", length), ("in_channels", in_channels),
                           ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{what}: {arg} must be a positive int, got {value!r}")
        self.length, self.in_channels, self.out_channels = length, in_channels, out_channels
        self.stride = _pair(what, "stride", stride, 1)
        self.dilation = _pair(what, "dilation", dilation, 1)
        self.output_padding = _pair(what, "output_padding", output_padding, 0)
        if self.output_padding[0]:
            raise ValueError(f"{what}: output_padding {output_padding!r} pads the height, "
                             "which is 1 for a 1-D convolution")
        if self.output_padding[1] >= max(self.stride[1], self.dilation[1]):
            raise ValueError(f"{what}: output_padding ({self.output_padding[1]}) must be "
                             "smaller than either stride or dilation (as in PyTorch)")
        if isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
            self.padding = (0, 0, padding, padding)
        elif (isinstance(padding, tuple | list) and len(padding) == 4
              and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                      for v in padding)):
            self.padding = tuple(int(v) for v in padding)
        else:
            raise ValueError(f"{what}: padding must be an int >= 0 or a 4-tuple of them, got "
                             f"{padding!r}")
        self.device = device
        self.permute = permute
        base = f"{name}." if name else ""
        shape = ((in_channels, out_channels, length) if permute
                 else (length, out_channels, in_channels))
        self.weight = Weight(f"{base}weight", dtype, shape, DeviceRef.CPU())
        self.bias = (Weight(f"{base}bias", dtype, (out_channels,), DeviceRef.CPU())
                     if has_bias else None)

    def __call__(self, x: TensorValue) -> TensorValue:
        x = TensorValue(x)
        if x.rank != 3:
            layout = "(batch, in_channels, length)" if self.permute else \
                "(batch, length, in_channels)"
            raise ValueError(f"ConvTranspose1d: expected an input {layout}, got shape "
                             f"{[str(d) for d in x.shape]}")
        device = self.device or x.device
        weight = TensorValue(self.weight).to(device)
        if self.permute:
            weight = ops.permute(weight, [2, 1, 0])
            x = ops.permute(x, [0, 2, 1])
        bias = TensorValue(self.bias).to(device) if self.bias is not None else None
        # ops.conv2d_transpose takes no output padding (as MAX's): the output of PyTorch's
        # ConvTranspose1d is the full transposed convolution less ``before`` positions at
        # the start and ``after - output_padding`` at the end; where that is negative, the
        # extra positions get no kernel contribution (zeros, then the bias).
        top, bottom, before, after = self.padding
        after -= self.output_padding[1]
        extra = max(0, -after)
        y = ops.conv2d_transpose(ops.unsqueeze(x, 1), ops.unsqueeze(weight, 0),
                                 stride=self.stride, dilation=self.dilation,
                                 padding=(top, bottom, before, max(0, after)),
                                 bias=None if extra else bias)
        y = ops.squeeze(y, 1)
        if extra:
            y = ops.pad(y, [0, 0, 0, extra, 0, 0])
            if bias is not None:
                y = y + bias
        return ops.permute(y, [0, 2, 1]) if self.permute else y
