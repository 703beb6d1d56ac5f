"""Normalization layers: ``LayerNorm``, ``RMSNorm``, ``GroupNorm``, ``ConstantLayerNorm``."""

from max.nn.norm.group_norm import GroupNorm
from max.nn.norm.layer_norm import ConstantLayerNorm, LayerNorm
from max.nn.norm.rms_norm import RMSNorm

__all__ = ["ConstantLayerNorm", "GroupNorm", "LayerNorm", "RMSNorm"]
