"""Multi-layer Perceptron: ``Linear`` (y = x W^T + b) and ``MLP`` (gated, three Linears)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from max.dtype import DType
from max.graph import DeviceRef, TensorValue, Weight, ops
from max.graph.quantization import QuantizationEncoding
from max.nn.clamp import clamp
from max.nn.layer import Module, _no_sharding


def _no_float8(what: str, float8_config: Any) -> None:
    if float8_config is not None:
        raise NotImplementedError(f"{what}: float8 quantization (float8_config) is not "
                                  "supported")


def _to(value: TensorValue, device: DeviceRef | None) -> TensorValue:
    """``value`` on ``device`` (weights are created on the CPU)."""
    if device is None or value.device == device:
        return value
    return value.to(device)


@dataclass
class DistributedGemmConfig:
    """Configure how distributed GEMM is executed (accepted; one device runs here)."""

    enable_matmul_allreduce: bool
    """If ``True``, use the matmul + all_reduce kernel."""

    @staticmethod
    def generate() -> DistributedGemmConfig | None:
        """Returns the default :class:`DistributedGemmConfig`."""
        return DistributedGemmConfig(False)


class Linear(Module):
    """Applies a linear transformation to incoming data: ``y = x W^T + b``.

    This layer implements a fully connected layer where inputs are multiplied by a weight
    matrix and optionally added with a bias vector. Both weights and bias initially reside
    on CPU, and the model init phase moves them to the specified device.

    With a GGUF ``quantization_encoding`` (``Q4_0``, ``Q8_0``, ``Q4_K``, ...) the weight is
    the ``uint8`` blocks of each output row, shape
    ``(out_dim, in_dim // elements_per_block * block_size)``, and the product is
    ``ops.qmatmul`` (float32 result).

    Example:
        >>> linear_layer = Linear(in_dim=256, out_dim=128, dtype=DType.float32,
        ...                       device=DeviceRef.CPU(), name="linear", has_bias=True)
        >>> output = linear_layer(input_tensor)  # inside a Graph

    Args:
        in_dim: The dimensionality of the input space.
        out_dim: The dimensionality of the output space.
        dtype: The ``DType`` for both weights and bias.
        device: The target ``DeviceRef`` for computation.
        has_bias: When ``True``, adds a bias vector to the layer. Defaults to ``False``.
        quantization_encoding: ``QuantizationEncoding`` for the weights.
        float8_config: ``Float8Config`` for float8 quantization (not supported:
            ``NotImplementedError``).
        name: Base name for weights (appended with ``.weight`` and ``.bias`` if
            applicable).
        clip_weight: Optional weight clipping threshold.
    """

    def __init__(self, in_dim: int, out_dim: int, dtype: DType, device: DeviceRef,
                 has_bias: bool = False,
                 quantization_encoding: QuantizationEncoding | None = None,
                 float8_config: Any = None, name: str | None = None,
                 clip_weight: float | None = None) -> None:
        super().__init__()
        _no_float8("Linear", float8_config)
        for arg, value in (("in_dim", in_dim), ("out_dim", out_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Linear: {arg} must be a positive int, got {value!r}")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.device = device
        self.clip_weight = clip_weight
        self.quantization_encoding = quantization_encoding
        base = f"{name}." if name else ""
        shape: tuple[int, ...] = (out_dim, in_dim)
        weight_dtype = dtype
        if quantization_encoding is not None:
            per_block = quantization_encoding.elements_per_block
            if in_dim % per_block:
                raise ValueError(f"Linear: in_dim {in_dim} is not a multiple of the "
                                 f"{quantization_encoding.name} block ({per_block} elements)")
            shape = (out_dim, in_dim // per_block * quantization_encoding.block_size)
            weight_dtype = DType.uint8
        self.weight = Weight(f"{base}weight", weight_dtype, shape, DeviceRef.CPU(),
                             quantization_encoding=quantization_encoding)
        if quantization_encoding is not None:
            self.weight.original_dtype_and_shape = (dtype, (out_dim, in_dim))
        self.bias = (Weight(f"{base}bias", dtype, (out_dim,), DeviceRef.CPU())
                     if has_bias else None)
        self.input_scale: Weight | None = None
        self.weight_scale: Weight | None = None

    @property
    def sharding_strategy(self) -> None:
        """Get the weight sharding strategy (always None: sharding is not supported)."""
        return None

    def shard(self, devices: Iterable[DeviceRef]) -> list[Linear]:
        """Creates sharded views of this Linear layer across multiple devices (not
        supported)."""
        raise _no_sharding("Linear.shard")

    def __call__(self, x: TensorValue) -> TensorValue:
        """Applies the linear transformation to ``x`` (``[..., in_dim]``)."""
        x = TensorValue(x)
        weight = _to(self.weight, self.device)
        if self.quantization_encoding is not None:
            out = ops.qmatmul(self.quantization_encoding, None, x, weight)
        else:
            if self.clip_weight is not None:
                weight = clamp(weight, -self.clip_weight, self.clip_weight)
            out = x @ weight.T
        if self.bias is not None:
            out = out + _to(self.bias, self.device)
        return out


def _gelu_tanh(x: TensorValue) -> TensorValue:
    return ops.gelu(x, approximate="tanh")


_ACTIVATIONS: dict[str, Callable[[TensorValue], TensorValue]] = {
    "silu": ops.silu,
    "gelu": ops.gelu,
    "gelu_tanh": _gelu_tanh,
    "relu": ops.relu,
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
}


class MLP(Module):
    """Simple multi-layer perceptron composed of three :class:`Linear` layers:
    ``down_proj(act(gate_proj(x)) * up_proj(x))``. Defaults to SiLU activation function.

    Args:
        dtype: ``DType`` to use for the layer weights, which should match the input dtype.
        quantization_encoding: ``QuantizationEncoding`` of the layer weights.
        hidden_dim: The last dimension of the layer input.
        feed_forward_length: Size of dimension used to project the inputs.
        devices: ``DeviceRef`` devices to run the ``MLP`` layer. If multiple are provided,
            the first device is used instead.
        linear_cls: :class:`Linear` class to use to create the projection layers.
        has_bias: Whether to include bias terms in the linear layers.
        activation_function: Activation function to use. Options are ``silu``, ``gelu``,
            ``gelu_tanh``, ``relu``, ``tanh``, ``sigmoid``.
        float8_config: ``Float8Config`` for float8 quantization (not supported).
        dist_gemm_config: :class:`DistributedGemmConfig` (accepted; one device runs here).
    """

    def __init__(self, dtype: DType, quantization_encoding: QuantizationEncoding | None,
                 hidden_dim: int, feed_forward_length: int, devices: Sequence[DeviceRef],
                 linear_cls: Callable[..., Linear] = Linear, has_bias: bool = False,
                 activation_function: str = "silu", float8_config: Any = None,
                 dist_gemm_config: DistributedGemmConfig | None = None) -> None:
        super().__init__()
        _no_float8("MLP", float8_config)
        if activation_function not in _ACTIVATIONS:
            raise ValueError(f"MLP: unknown activation_function {activation_function!r} "
                             f"(options: {', '.join(_ACTIVATIONS)})")
        devices = list(devices)
        if not devices:
            raise ValueError("MLP: devices must name at least one device")
        self.devices = devices
        self.activation_function = activation_function
        kwargs = dict(dtype=dtype, device=devices[0], has_bias=has_bias,
                      quantization_encoding=quantization_encoding)
        self.gate_proj = linear_cls(in_dim=hidden_dim, out_dim=feed_forward_length, **kwargs)
        self.down_proj = linear_cls(in_dim=feed_forward_length, out_dim=hidden_dim, **kwargs)
        self.up_proj = linear_cls(in_dim=hidden_dim, out_dim=feed_forward_length, **kwargs)

    @property
    def sharding_strategy(self) -> None:
        """Get the MLP sharding strategy (always None: sharding is not supported)."""
        return None

    def shard(self, devices: Iterable[DeviceRef]) -> list[MLP]:
        """Creates sharded views of this MLP across multiple devices (not supported)."""
        raise _no_sharding("MLP.shard")

    def __call__(self, x: TensorValue) -> TensorValue:
        act = _ACTIVATIONS[self.activation_function]
        return self.down_proj(act(self.gate_proj(x)) * self.up_proj(x))
