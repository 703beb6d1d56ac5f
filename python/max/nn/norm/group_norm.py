"""``GroupNorm``: normalization statistics per group of channels (channels-first input)."""

from __future__ import annotations

from max.dtype import DType
from max.graph import DeviceRef, TensorValue, Weight, ops
from max.nn.layer import Module


class GroupNorm(Module):
    """Group normalization block.

    Divides channels into groups and computes normalization stats per group. Follows the
    implementation pattern from PyTorch's group_norm: the input is ``(N, C, *spatial)``,
    each of the ``num_groups`` groups of ``C / num_groups`` channels is normalized over its
    channels and all spatial positions, then ``weight`` and ``bias`` (``(C,)``) scale and
    shift each channel.

    Args:
        num_groups: Number of groups to separate the channels into.
        num_channels: Number of input channels.
        eps: Small constant added to denominator for numerical stability.
        affine: If True, apply learnable affine transform parameters.
        device: The device to run on (the reference's default is ``gpu:0``; here it is the
            CPU, the one device that runs).
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device: DeviceRef | None = None) -> None:
        super().__init__()
        for arg, value in (("num_groups", num_groups), ("num_channels", num_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"GroupNorm: {arg} must be a positive int, got {value!r}")
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps = eps
        self.affine = affine
        self.device = device or DeviceRef.CPU()
        if affine:
            self.weight = Weight("weight", DType.float32, (num_channels,), DeviceRef.CPU())
            self.bias = Weight("bias", DType.float32, (num_channels,), DeviceRef.CPU())

    def __call__(self, x: TensorValue) -> TensorValue:
        x = TensorValue(x)
        if x.rank < 2 or str(x.shape[1]) != str(self.num_channels):
            raise ValueError(f"GroupNorm: expected an input (N, {self.num_channels}, ...), "
                             f"got shape {[str(d) for d in x.shape]}")
        shape = list(x.shape)
        xf = x.cast(DType.float32) if x.dtype != DType.float32 else x
        per_group = self.num_channels // self.num_groups
        spatial = 1
        for d in shape[2:]:
            spatial = spatial * d
        grouped = ops.reshape(xf, [shape[0], self.num_groups, per_group * spatial])
        mean = ops.mean(grouped, axis=-1)
        centered = grouped - mean
        var = ops.mean(centered * centered, axis=-1)
        normed = ops.reshape(centered * ops.rsqrt(var + self.eps), shape)
        if self.affine:
            bcast = [self.num_channels] + [1] * (len(shape) - 2)
            weight = ops.reshape(TensorValue(self.weight).to(x.device), bcast)
            bias = ops.reshape(TensorValue(self.bias).to(x.device), bcast)
            normed = normed * weight + bias
        return normed.cast(x.dtype) if x.dtype != DType.float32 else normed
