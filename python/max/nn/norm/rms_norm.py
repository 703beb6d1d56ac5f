"""``RMSNorm``: ``x / sqrt(mean(x**2) + eps) * (weight + weight_offset)``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from max.dtype import DType
from max.graph import DeviceRef, TensorValue, Weight, ops
from max.nn.layer import Module, _no_sharding


class RMSNorm(Module):
    """Computes the Root Mean Square normalization on inputs.

    The statistics are taken in float32 whatever the input dtype.

    Args:
        dim: Size of last dimension of the expected input.
        dtype: The dtype of the weight.
        eps: Value added to denominator for numerical stability.
        weight_offset: Constant offset added to the learned weights at runtime. For
            Gemma-style RMSNorm, this should be set to 1.0.
        multiply_before_cast: True if we multiply the inputs by the learned weights before
            casting to the input type (Gemma3-style). False if we cast the inputs to the
            input type first, then multiply by the learned weights (Llama-style).
    """

    def __init__(self, dim: int, dtype: DType, eps: float = 1e-6, weight_offset: float = 0.0,
                 multiply_before_cast: bool = True) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"RMSNorm: dim must be a positive int, got {dim!r}")
        self.dim = dim
        self.dtype = dtype
        self.eps = eps
        self.weight_offset = weight_offset
        self.multiply_before_cast = multiply_before_cast
        self.weight = Weight("weight", dtype, (dim,), DeviceRef.CPU())

    @property
    def sharding_strategy(self) -> None:
        """Get the RMSNorm sharding strategy (always None: sharding is not supported)."""
        return None

    def shard(self, devices: Iterable[DeviceRef]) -> Sequence[RMSNorm]:
        """Creates sharded views of this RMSNorm across multiple devices (not supported)."""
        raise _no_sharding("RMSNorm.shard")

    def __call__(self, x: TensorValue) -> TensorValue:
        x = TensorValue(x)
        if x.rank < 1 or str(x.shape[-1]) != str(self.dim):
            raise ValueError(f"RMSNorm: expected an input whose last dim is {self.dim}, got "
                             f"shape {[str(d) for d in x.shape]}")
        weight = TensorValue(self.weight).to(x.device)
        xf = x.cast(DType.float32) if x.dtype != DType.float32 else x
        normed = xf * ops.rsqrt(ops.mean(xf * xf, axis=-1) + self.eps)
        if self.multiply_before_cast:
            scale = weight.cast(DType.float32) + self.weight_offset
            return (normed * scale).cast(x.dtype)
        scale = weight.cast(x.dtype) + self.weight_offset
        return normed.cast(x.dtype) * scale
