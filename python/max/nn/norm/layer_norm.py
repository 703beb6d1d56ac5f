"""``LayerNorm`` (learned gamma and beta) and ``ConstantLayerNorm`` (fixed ones and zeros)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from max.dtype import DType
from max.graph import DeviceRef, TensorValue, Weight, ops
from max.nn.layer import Module, _no_sharding


def _dims_tuple(what: str, dims: int | tuple[int, ...]) -> tuple[int, ...]:
    out = (dims,) if isinstance(dims, int) else tuple(dims)
    if not out or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in out):
        raise ValueError(f"{what}: dims must be a positive int or a tuple of them, got "
                         f"{dims!r}")
    return out


def _check_input(what: str, x: TensorValue, dims: tuple[int, ...]) -> None:
    tail = list(x.shape)[len(x.shape) - len(dims):] if x.rank >= len(dims) else None
    if tail is None or [str(d) for d in tail] != [str(d) for d in dims]:
        raise ValueError(f"{what}: expected an input whose last dims are {list(dims)}, got "
                         f"shape {[str(d) for d in x.shape]}")


class LayerNorm(Module):
    """Layer normalization block: normalizes over the last ``dims`` elements, then scales by
    ``weight`` and shifts by ``bias`` (as ``torch.nn.LayerNorm``).

    Args:
        dims: The size of the normalized (last) dimension.
        devices: The devices to run on (the first is used).
        dtype: The dtype of the weights.
        eps: Value added to the variance for numerical stability.
        use_bias: Whether the layer has a learned ``bias`` (otherwise it shifts by zero).
    """

    def __init__(self, dims: int, devices: Sequence[DeviceRef], dtype: DType,
                 eps: float = 1e-5, use_bias: bool = True) -> None:
        super().__init__()
        self.dims = _dims_tuple("LayerNorm", dims)
        self.devices = list(devices) or [DeviceRef.CPU()]
        self.eps = eps
        self.dtype = dtype
        self.weight = Weight("weight", dtype, self.dims, DeviceRef.CPU())
        self.bias = Weight("bias", dtype, self.dims, DeviceRef.CPU()) if use_bias else None

    @property
    def sharding_strategy(self) -> None:
        """Get the LayerNorm sharding strategy (always None: sharding is not supported)."""
        return None

    def shard(self, devices: Iterable[DeviceRef]) -> Sequence[LayerNorm]:
        """Creates sharded views of this LayerNorm across multiple devices (not
        supported)."""
        raise _no_sharding("LayerNorm.shard")

    def __call__(self, input: TensorValue) -> TensorValue:
        x = TensorValue(input)
        _check_input("LayerNorm", x, self.dims)
        device = self.devices[0]
        gamma = TensorValue(self.weight).to(device).cast(x.dtype)
        if self.bias is not None:
            beta = TensorValue(self.bias).to(device).cast(x.dtype)
        else:
            beta = ops.constant(np.zeros(self.dims, np.float32), x.dtype, device)
        return ops.layer_norm(x, gamma, beta, self.eps)


class ConstantLayerNorm(Module):
    """Layer normalization block with constant gamma (ones) and beta (zeros) values.

    Args:
        dims: The size of the normalized (last) dimension(s).
        device: The device to run on.
        dtype: The dtype of gamma and beta.
        eps: Value added to the variance for numerical stability.
    """

    def __init__(self, dims: int | tuple[int, ...], device: DeviceRef, dtype: DType,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.dims = _dims_tuple("ConstantLayerNorm", dims)
        self.device = device
        self.dtype = dtype
        self.eps = eps
        self.gamma = np.ones(self.dims, dtype.to_numpy())
        self.beta = np.zeros(self.dims, dtype.to_numpy())

    def __call__(self, input: TensorValue) -> TensorValue:
        x = TensorValue(input)
        _check_input("ConstantLayerNorm", x, self.dims)
        gamma = ops.constant(self.gamma, x.dtype, self.device)
        beta = ops.constant(self.beta, x.dtype, self.device)
        return ops.layer_norm(x, gamma, beta, self.eps)
