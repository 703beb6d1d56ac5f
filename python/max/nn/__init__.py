"""APIs to build neural network components for deep learning models with Python (the
graph API: layers stage ops into the current ``max.graph.Graph``; their weights are
``max.graph.Weight``s whose values come from ``Module.load_state_dict``)."""

from max.nn.attention import MultiheadAttention
from max.nn.clamp import clamp
from max.nn.conv import Conv1D, Conv2d, Conv3D
from max.nn.conv_transpose import ConvTranspose1d
from max.nn.embedding import Embedding
from max.nn.layer import (Layer, LayerList, Module, Shardable, add_layer_hook, clear_hooks,
                          recursive_named_layers)
from max.nn.linear import MLP, DistributedGemmConfig, Linear
from max.nn.norm import ConstantLayerNorm, GroupNorm, LayerNorm, RMSNorm
from max.nn.rotary_embedding import (LinearScalingParams, Llama3RopeScalingParams,
                                     Llama3RotaryEmbedding, RotaryEmbedding)
from max.nn.sequential import Sequential

__all__ = [
    "MLP",
    "ConstantLayerNorm",
    "Conv1D",
    "Conv2d",
    "Conv3D",
    "ConvTranspose1d",
    "DistributedGemmConfig",
    "Embedding",
    "GroupNorm",
    "Layer",
    "LayerList",
    "LayerNorm",
    "Linear",
    "LinearScalingParams",
    "Llama3RopeScalingParams",
    "Llama3RotaryEmbedding",
    "Module",
    "MultiheadAttention",
    "RMSNorm",
    "RotaryEmbedding",
    "Sequential",
    "Shardable",
    "add_layer_hook",
    "clamp",
    "clear_hooks",
    "recursive_named_layers",
]
