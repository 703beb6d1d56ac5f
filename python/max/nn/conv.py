"""Convolution layers ``Conv1D``, ``Conv2d`` and ``Conv3D`` over ``ops.conv2d`` / ``ops.conv3d``.

Without ``permute`` a layer speaks MAX's layouts: channels-last inputs (``(N, L, C)``,
NHWC, NDHWC) and filters with the output channels last (``(K, C/g, O)``, RSCF, QRSCF).
With ``permute=True`` it speaks PyTorch's: the filter weight has ``torch.nn.ConvNd``'s
shape ``(O, C/g, *kernel)`` (so a PyTorch checkpoint loads as is), the input is
channels-first (``(N, C, L)``, NCHW, NCDHW), and so is the output.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from max.dtype import DType
from max.graph import DeviceRef, TensorValue, Weight, ops
from max.nn.layer import Module, _no_sharding


def _ints(what: str, arg: str, value: Any, n: int, low: int) -> tuple[int, ...]:
    """``value`` as ``n`` ints >= ``low``; an int stands for all ``n``."""
    items = (value,) * n if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if len(items) != n or any(isinstance(v, bool) or not isinstance(v, int) or v < low
                              for v in items):
        raise ValueError(f"{what}: {arg} must be an int >= {low} or a tuple of {n} of them, "
                         f"got {value!r}")
    return items


def _padding(what: str, value: Any, spatial: int) -> tuple[int, ...]:
    """Padding as (before, after) per spatial dim: an int pads every side; ``spatial`` ints
    pad both sides of each dim; ``2 * spatial`` ints are the (before, after) pairs."""
    if isinstance(value, tuple | list) and len(value) == spatial and spatial > 1:
        value = tuple(v for p in _ints(what, "padding", value, spatial, 0) for v in (p, p))
    return _ints(what, "padding", value, 2 * spatial, 0)


class _ConvNd(Module):
    """The shared body of the convolution layers (``spatial`` = 1, 2 or 3)."""

    spatial: int
    torch_filter_order: list[int]  # (O, C/g, *kernel) -> MAX's (*kernel, C/g, O)

    def __init__(self, kernel: tuple[int, ...], in_channels: int, out_channels: int,
                 dtype: DType, stride: Any, padding: Any, dilation: Any, num_groups: int,
                 device: DeviceRef | None, has_bias: bool, permute: bool,
                 name: str | None) -> None:
        super().__init__()
        what = type(self).__name__
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels),
                           ("num_groups", num_groups)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{what}: {arg} must be a positive int, got {value!r}")
        if in_channels % num_groups or out_channels % num_groups:
            raise ValueError(f"{what}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by num_groups ({num_groups})")
        self.kernel_size = kernel
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_groups = num_groups
        self.device = device
        self.permute = permute
        self.stride = _ints(what, "stride", stride, self.spatial, 1)
        self.dilation = _ints(what, "dilation", dilation, self.spatial, 1)
        self.padding = _padding(what, padding, self.spatial)
        base = f"{name}." if name else ""
        cg = in_channels // num_groups
        shape = (out_channels, cg, *kernel) if permute else (*kernel, cg, out_channels)
        self.filter = Weight(f"{base}weight", dtype, shape, DeviceRef.CPU())
        self.bias = (Weight(f"{base}bias", dtype, (out_channels,), DeviceRef.CPU())
                     if has_bias else None)

    def _operands(self, x: Any) -> tuple[TensorValue, TensorValue, TensorValue | None]:
        x = TensorValue(x)
        rank = self.spatial + 2
        if x.rank != rank:
            layout = "channels-first" if self.permute else "channels-last"
            raise ValueError(f"{type(self).__name__}: expected a rank-{rank} {layout} input, "
                             f"got shape {[str(d) for d in x.shape]}")
        device = self.device or x.device
        weight = TensorValue(self.filter).to(device)
        bias = TensorValue(self.bias).to(device) if self.bias is not None else None
        if self.permute:
            weight = ops.permute(weight, self.torch_filter_order)
            x = ops.permute(x, [0, *range(2, rank), 1])
        return x, weight, bias

    def _finish(self, y: TensorValue) -> TensorValue:
        if self.permute:
            rank = self.spatial + 2
            y = ops.permute(y, [0, rank - 1, *range(1, rank - 1)])
        return y

    @property
    def sharding_strategy(self) -> None:
        """The sharding strategy (always None: sharding is not supported)."""
        return None

    def shard(self, devices: Iterable[DeviceRef]) -> list[Any]:
        """Creates sharded views across multiple devices (not supported)."""
        raise _no_sharding(f"{type(self).__name__}.shard")


class Conv1D(_ConvNd):
    """A 1D convolution over an input signal composed of several input planes.

    The input is ``(batch, length, in_channels)`` (``(batch, in_channels, length)`` with
    ``permute``); it runs as a 2-D convolution of height 1.

    Args:
        kernel_size: Size of the convolving kernel (width dimension).
        in_channels: Number of channels in the input signal.
        out_channels: Number of channels produced by the convolution.
        dtype: The data type for both weights and bias.
        stride: Stride of the convolution. Default: 1
        padding: Padding added to both sides of the input sequence (an int, or a
            ``(before, after)`` pair). Default: 0
        dilation: Spacing between kernel elements. Default: 1
        num_groups: Number of blocked connections from input channels to output channels.
            Default: 1
        device: The target device for computation. If None, the input's device.
        has_bias: If true, adds a learnable bias vector to the layer. Defaults to ``False``.
        permute: If true, permutes weights from PyTorch format to MAX format. PyTorch order:
            (out_channels, in_channels / num_groups, kernel_size). MAX API order:
            (kernel_size, in_channels / num_groups, out_channels). Defaults to ``False``.
        name: Base name for weights: ``{name}.weight`` and ``{name}.bias``; if None,
            ``weight`` and ``bias``.
    """

    spatial = 1
    torch_filter_order = [2, 1, 0]

    def __init__(self, kernel_size: int, in_channels: int, out_channels: int, dtype: DType,
                 stride: int = 1, padding: int = 0, dilation: int = 1, num_groups: int = 1,
                 device: DeviceRef | None = None, has_bias: bool = False,
                 permute: bool = False, name: str | None = None) -> None:
        kernel = _ints("Conv1D", "kernel_size", kernel_size, 1, 1)
        super().__init__(kernel, in_channels, out_channels, dtype, stride, padding, dilation,
                         num_groups, device, has_bias, permute, name)

    def __call__(self, x: TensorValue) -> TensorValue:
        x, weight, bias = self._operands(x)
        y = ops.conv2d(ops.unsqueeze(x, 1), ops.unsqueeze(weight, 0),
                       stride=(1, *self.stride), dilation=(1, *self.dilation),
                       padding=(0, 0, *self.padding), groups=self.num_groups, bias=bias)
        return self._finish(ops.squeeze(y, 1))


class Conv2d(_ConvNd):
    """A 2D convolution over an input signal composed of several input planes.

    Args:
        kernel_size: Size of the convolving kernel. Can be a single int (square kernel) or
            tuple (height, width).
        in_channels: Number of channels in the input image.
        out_channels: Number of channels produced by the convolution.
        dtype: The data type for both weights and bias.
        stride: Stride of the convolution for height and width dimensions. Can be int
            (applied to both dimensions) or tuple (stride_h, stride_w). Default: 1
        padding: Padding added to input. Can be int (applied to all sides), tuple of 2 ints
            (pad_h, pad_w), or tuple of 4 ints (pad_top, pad_bottom, pad_left, pad_right).
            Default: 0
        dilation: Spacing between kernel elements for height and width dimensions. Can be
            int (applied to both dimensions) or tuple (dilation_h, dilation_w). Default: 1
        num_groups: Number of blocked connections from input channels to output channels.
            Default: 1
        device: The target device for computation. If None, the input's device.
        has_bias: If true, adds a learnable bias vector to the layer. Defaults to ``False``.
        permute: If true, permutes weights from PyTorch format to MAX format. PyTorch order:
            (out_channels, in_channels / num_groups, height, width). MAX API order: (height,
            width, in_channels / num_groups, out_channels). Defaults to ``False``.
        name: Base name for weights: ``{name}.weight`` and ``{name}.bias``; if None,
            ``weight`` and ``bias``.
    """

    spatial = 2
    torch_filter_order = [2, 3, 1, 0]

    def __init__(self, kernel_size: int | tuple[int, int], in_channels: int,
                 out_channels: int, dtype: DType, stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] | tuple[int, int, int, int] = 0,
                 dilation: int | tuple[int, int] = 1, num_groups: int = 1,
                 device: DeviceRef | None = None, has_bias: bool = False,
                 permute: bool = False, name: str | None = None) -> None:
        kernel = _ints("Conv2d", "kernel_size", kernel_size, 2, 1)
        super().__init__(kernel, in_channels, out_channels, dtype, stride, padding, dilation,
                         num_groups, device, has_bias, permute, name)

    def __call__(self, x: TensorValue) -> TensorValue:
        x, weight, bias = self._operands(x)
        y = ops.conv2d(x, weight, stride=self.stride, dilation=self.dilation,
                       padding=self.padding, groups=self.num_groups, bias=bias)
        return self._finish(y)


class Conv3D(_ConvNd):
    """A 3D convolution over an input signal composed of several input planes.

    Args:
        depth: Depth dimension of the convolution kernel (kernel_size[0]).
        height: Height dimension of the convolution kernel (kernel_size[1]).
        width: Width dimension of the convolution kernel (kernel_size[2]).
        in_channels: Number of channels in the input image.
        out_channels: Number of channels produced by the convolution.
        dtype: The data type for both weights and bias.
        stride: Stride of the convolution for depth, height, and width dimensions. Can be
            int (applied to all dimensions) or tuple of 3 ints. Default: 1
        padding: Padding added to all six sides of the input in order: (pad_front,
            pad_back, pad_top, pad_bottom, pad_left, pad_right). Can be int (applied to all
            sides), tuple of 3 ints (one per dim) or tuple of 6 ints. Default: 0
        dilation: Spacing between kernel elements for depth, height, and width dimensions.
            Can be int (applied to all dimensions) or tuple of 3 ints. Default: 1
        num_groups: Number of blocked connections from input channels to output channels.
            Default: 1.
        device: The target device for computation. If None, the input's device.
        has_bias: If true, adds a learnable bias vector to the layer. Defaults to ``False``.
        permute: If true, permutes weights from PyTorch format to MAX format. PyTorch order:
            (out_channels, in_channels / num_groups, depth, height, width). MAX API order:
            (depth, height, width, in_channels / num_groups, out_channels). Defaults to
            ``False``.
        name: Base name for weights: ``{name}.weight`` and ``{name}.bias``; if None,
            ``weight`` and ``bias``.
    """

    spatial = 3
    torch_filter_order = [2, 3, 4, 1, 0]

    def __init__(self, depth: int, height: int, width: int, in_channels: int,
                 out_channels: int, dtype: DType, stride: int | tuple[int, int, int] = 1,
                 padding: int | tuple[int, ...] = 0, dilation: int | tuple[int, int, int] = 1,
                 num_groups: int = 1, device: DeviceRef | None = None,
                 has_bias: bool = False, permute: bool = False,
                 name: str | None = None) -> None:
        kernel = _ints("Conv3D", "kernel size (depth, height, width)",
                       (depth, height, width), 3, 1)
        super().__init__(kernel, in_channels, out_channels, dtype, stride, padding, dilation,
                         num_groups, device, has_bias, permute, name)

    def __call__(self, x: TensorValue) -> TensorValue:
        x, weight, bias = self._operands(x)
        y = ops.conv3d(x, weight, stride=self.stride, dilation=self.dilation,
                       padding=self.padding, groups=self.num_groups, bias=bias)
        return self._finish(y)
