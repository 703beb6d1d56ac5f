"""Attention layers."""

from max.nn.attention.multihead_attention import MultiheadAttention

__all__ = ["MultiheadAttention"]
