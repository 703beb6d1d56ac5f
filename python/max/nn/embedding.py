"""``Embedding``: a lookup table mapping integer indices (token ids) to dense vectors."""

from __future__ import annotations

from max.dtype import DType
from max.graph import DeviceRef, TensorValue, Weight, ops
from max.graph.quantization import QuantizationEncoding
from max.nn.layer import Module


class Embedding(Module):
    """A lookup table for embedding integer indices into dense vectors.

    This layer maps each integer index to a dense vector of fixed size. Embedding weights
    are stored on the CPU but are moved to the specified device during the model init phase.
    With a GGUF ``quantization_encoding`` the table holds each row's ``uint8`` blocks and the
    looked-up rows are dequantized (float32 result).

    Example:
        >>> embedding_layer = Embedding(vocab_size=1000, hidden_dim=256,
        ...                             dtype=DType.float32, device=DeviceRef.CPU(),
        ...                             name="embeddings")
        >>> embeddings = embedding_layer(token_indices)  # inside a Graph

    Args:
        vocab_size: The number of unique items in the vocabulary. Indices must be in the
            range ``[0, vocab_size)``.
        hidden_dim: The dimensionality of each embedding vector.
        dtype: The data type of the embedding weights.
        device: The device where embedding lookups are executed.
        quantization_encoding: Optional quantization encoding for the weights.
        name: The name identifier for the embedding weight matrix (default ``"weight"``).
    """

    def __init__(self, vocab_size: int, hidden_dim: int, dtype: DType, device: DeviceRef,
                 quantization_encoding: QuantizationEncoding | None = None,
                 name: str | None = None) -> None:
        super().__init__()
        for arg, value in (("vocab_size", vocab_size), ("hidden_dim", hidden_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Embedding: {arg} must be a positive int, got {value!r}")
        self.vocab_size, self.hidden_dim = vocab_size, hidden_dim
        self.device = device
        self.quantization_encoding = quantization_encoding
        shape = (vocab_size, hidden_dim)
        weight_dtype = dtype
        if quantization_encoding is not None:
            per_block = quantization_encoding.elements_per_block
            if hidden_dim % per_block:
                raise ValueError(f"Embedding: hidden_dim {hidden_dim} is not a multiple of "
                                 f"the {quantization_encoding.name} block ({per_block})")
            shape = (vocab_size, hidden_dim // per_block * quantization_encoding.block_size)
            weight_dtype = DType.uint8
        self.weight = Weight(name or "weight", weight_dtype, shape, DeviceRef.CPU(),
                             quantization_encoding=quantization_encoding)

    def __call__(self, indices: TensorValue) -> TensorValue:
        """Looks up the rows of ``indices`` (any shape, an integer dtype): the result has
        shape ``indices.shape + [hidden_dim]``."""
        indices = TensorValue(indices)
        if not indices.dtype.is_integral():
            raise ValueError(f"Embedding: indices must have an integer dtype, got "
                             f"{indices.dtype.name}")
        weight = TensorValue(self.weight)
        if self.device is not None and weight.device != self.device:
            weight = weight.to(self.device)
        rows = ops.gather(weight, indices, axis=0)
        if self.quantization_encoding is not None:
            rows = ops.dequantize(self.quantization_encoding, rows)
        return rows
