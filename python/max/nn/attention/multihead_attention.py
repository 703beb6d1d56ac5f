"""``MultiheadAttention``: scaled dot-product self-attention over ``num_attention_heads``
heads, with q/k/v and output projections."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from max.dtype import DType
from max.graph import DeviceRef, TensorValue, Weight, ops
from max.nn.layer import Module
from max.nn.linear import Linear


class MultiheadAttention(Module):
    """Multihead attention that handles both single and distributed computation (one device
    here). Initializes the attention layer.

    Calling it on ``x`` of shape ``(batch, seq_len, hidden_size)`` returns
    ``o_proj(softmax(q k^T * scale + attention_mask) v)`` per head, with the heads
    concatenated, as ``torch.nn.MultiheadAttention(batch_first=True)`` computes
    self-attention. The keyword ``attention_mask`` is added to the scores: any shape that
    broadcasts to ``(batch, num_heads, seq_len, seq_len)`` (large negative values mask).

    The weights are named as Hugging Face checkpoints name them: ``q_proj.weight``,
    ``k_proj.weight``, ``v_proj.weight`` (``qkv_proj.weight``, ``(3 * hidden, hidden)``,
    with ``stacked_qkv``), ``o_proj.weight``, and ``.bias`` beside each where enabled.

    Args:
        num_attention_heads: The number of attention heads.
        hidden_size: The dimension of the hidden states (embed_dim).
        devices: Device(s) to place the weights and run the computation (one device:
            several raise ``NotImplementedError``).
        dtype: DType of the QKV and output projection weights.
        scale: Value used to scale the results of the attention output (default
            ``1 / sqrt(head_dim)``).
        qkv_has_bias: Whether the q, k and v projections have a bias.
        o_proj_has_bias: Whether the output projection has a bias.
        stacked_qkv: Whether to use a single stacked QKV weight matrix.
    """

    def __init__(self, num_attention_heads: int, hidden_size: int,
                 devices: Sequence[DeviceRef] | None = None, dtype: DType = DType.float32,
                 scale: float | None = None, qkv_has_bias: bool = False,
                 o_proj_has_bias: bool = False, stacked_qkv: bool = False) -> None:
        super().__init__()
        for arg, value in (("num_attention_heads", num_attention_heads),
                           ("hidden_size", hidden_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"MultiheadAttention: {arg} must be a positive int, got "
                                 f"{value!r}")
        if hidden_size % num_attention_heads:
            raise ValueError(f"MultiheadAttention: hidden_size ({hidden_size}) must be "
                             f"divisible by num_attention_heads ({num_attention_heads})")
        self.devices = list(devices) if devices else [DeviceRef.CPU()]
        if len(self.devices) > 1:
            raise NotImplementedError("MultiheadAttention: distributed computation over "
                                      f"{len(self.devices)} devices is not supported")
        self.num_heads = num_attention_heads
        self.hidden_size = hidden_size
        self.head_dim = hidden_size // num_attention_heads
        self.scale = scale if scale is not None else math.sqrt(1.0 / self.head_dim)
        self.stacked_qkv = stacked_qkv
        self.qkv_has_bias = qkv_has_bias
        device = self.devices[0]
        cpu = DeviceRef.CPU()
        if stacked_qkv:
            self.qkv_proj = Weight("qkv_proj.weight", dtype, (3 * hidden_size, hidden_size),
                                   cpu)
            self.qkv_proj_bias = (Weight("qkv_proj.bias", dtype, (3 * hidden_size,), cpu)
                                  if qkv_has_bias else None)
        else:
            for proj in ("q_proj", "k_proj", "v_proj"):
                setattr(self, proj, Linear(hidden_size, hidden_size, dtype, device,
                                           has_bias=qkv_has_bias))
        self.o_proj = Linear(hidden_size, hidden_size, dtype, device,
                             has_bias=o_proj_has_bias)

    @property
    def wqkv(self) -> TensorValue:
        """The concatenation of q, k, and v weight vectors."""
        if self.stacked_qkv:
            return TensorValue(self.qkv_proj)
        return ops.concat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])

    @property
    def wqkv_bias(self) -> TensorValue | None:
        """The concatenation of q, k, and v bias weight vectors."""
        if not self.qkv_has_bias:
            return None
        if self.stacked_qkv:
            return TensorValue(self.qkv_proj_bias)
        return ops.concat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])

    def __call__(self, x: TensorValue | list[TensorValue], signal_buffers: Any = None,
                 **kwargs: Any) -> TensorValue:
        if isinstance(x, list | tuple):
            raise NotImplementedError("MultiheadAttention: distributed inputs (a list of "
                                      "tensors) are not supported")
        x = TensorValue(x)
        if x.rank != 3 or str(x.shape[-1]) != str(self.hidden_size):
            raise ValueError(f"MultiheadAttention: expected an input (batch, seq_len, "
                             f"{self.hidden_size}), got shape {[str(d) for d in x.shape]}")
        device = self.devices[0]
        qkv = x @ self.wqkv.to(device).T
        bias = self.wqkv_bias
        if bias is not None:
            qkv = qkv + bias.to(device)
        batch, seq = x.shape[0], x.shape[1]
        h, d = self.num_heads, self.head_dim

        def heads(i: int) -> TensorValue:
            part = qkv[..., i * self.hidden_size:(i + 1) * self.hidden_size]
            return ops.reshape(part, [batch, seq, h, d]).transpose(1, 2)

        q, k, v = heads(0), heads(1), heads(2)
        scores = (q @ k.transpose(2, 3)) * self.scale
        mask = kwargs.get("attention_mask")
        if mask is not None:
            scores = scores + mask
        out = ops.softmax(scores) @ v
        out = ops.reshape(out.transpose(1, 2), [batch, seq, self.hidden_size])
        return self.o_proj(out)
