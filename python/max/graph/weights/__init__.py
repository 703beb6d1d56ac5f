"""APIs for loading weights into a graph.

Weights are the learned parameters that store a neural network's knowledge. Checkpoints are
read lazily and memory-mapped: a weight's data is a view of the file, and nothing is read
until it is touched. Every file is validated before any weight of it is handed out.

Example:
    >>> weights = load_weights([Path("model.safetensors")])  # doctest: +SKIP
    >>> w = weights.encoder.layer[0].attention.self.query.weight.allocate()  # doctest: +SKIP
    >>> # ... build a graph using ``w``, then:
    >>> InferenceSession().load(graph, weights_registry=weights.allocated_weights)  # doctest: +SKIP
"""

from __future__ import annotations

from max.graph.weights.format import WeightsFormat, load_weights, weights_format
from max.graph.weights.load_gguf import GGUFWeights
from max.graph.weights.load_pytorch import PytorchWeights
from max.graph.weights.load_safetensors import SafetensorWeights
from max.graph.weights.weights import WeightData, Weights

__all__ = [
    "GGUFWeights",
    "PytorchWeights",
    "SafetensorWeights",
    "WeightData",
    "Weights",
    "WeightsFormat",
    "load_weights",
    "weights_format",
]
