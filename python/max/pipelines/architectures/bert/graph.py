"""The BERT encoder built with ``max.nn``, one module per block.

The modules' attributes follow Hugging Face's ``BertModel`` (``encoder.layer[3].attention
.self.query``), so their :class:`~max.graph.Weight` objects carry the checkpoint's names and the
compiled graph holds no weight: they are bound when the model is loaded (``weights_registry``,
see :func:`~max.pipelines.architectures.bert.weights.load_state`). The computation is Hugging
Face's ``BertModel`` in eval mode (no dropout), followed by sentence-transformers' mean
pooling and L2 normalization.
"""

from __future__ import annotations

import math

import numpy as np

from max.dtype import DType
from max.graph import DeviceRef, Dim, Graph, TensorType, TensorValue, ops
from max.nn import Embedding, LayerList, LayerNorm, Linear, Module
from max.pipelines.architectures.bert.config import BertConfig

CPU = DeviceRef.CPU()
# Added to the attention scores of padding keys: the float32 minimum, as Hugging Face's BERT
# does, so that a padding key's probability is exactly 0 (a finite value keeps 0 * it finite).
MASK_VALUE = float(np.finfo(np.float32).min)


F32 = DType.float32


def _linear(in_dim: int, out_dim: int) -> Linear:
    return Linear(in_dim, out_dim, F32, CPU, has_bias=True)


def _layer_norm(dim: int, eps: float) -> LayerNorm:
    return LayerNorm(dim, devices=[CPU], dtype=F32, eps=eps)


class BertEmbeddings(Module):
    """Word + position + token type embeddings, then LayerNorm: [batch, seq, hidden]."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.word_embeddings = Embedding(config.vocab_size, h, F32, CPU)
        self.position_embeddings = Embedding(config.max_position_embeddings, h, F32, CPU)
        self.token_type_embeddings = Embedding(config.type_vocab_size, h, F32, CPU)
        self.LayerNorm = _layer_norm(h, config.layer_norm_eps)

    def __call__(self, input_ids: TensorValue, token_type_ids: TensorValue) -> TensorValue:
        positions = ops.range(0, input_ids.shape[1], 1, dtype=DType.int64, device=CPU)
        return self.LayerNorm(self.word_embeddings(input_ids)
                              + self.position_embeddings(positions)
                              + self.token_type_embeddings(token_type_ids))


def attention_mask_bias(attention_mask: TensorValue) -> TensorValue:
    """[batch, seq] of 1 (token) / 0 (padding) -> [batch, 1, 1, seq] to add to the scores:
    0 for tokens, :data:`MASK_VALUE` for padding."""
    m = ops.cast(attention_mask, DType.float32)
    batch, seq = attention_mask.shape
    return ops.reshape((1.0 - m) * MASK_VALUE, [batch, 1, 1, seq])


class BertSelfAttention(Module):
    """Multi-head scaled dot-product attention of ``x`` with itself (no output projection)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.heads, self.head_dim = config.num_attention_heads, config.head_dim
        self.query, self.key, self.value = _linear(h, h), _linear(h, h), _linear(h, h)

    def __call__(self, x: TensorValue, mask_bias: TensorValue) -> TensorValue:
        batch, seq, h = x.shape

        def split_heads(t: TensorValue) -> TensorValue:  # [b, s, h] -> [b, heads, s, d]
            return ops.permute(ops.reshape(t, [batch, seq, self.heads, self.head_dim]),
                               [0, 2, 1, 3])

        q, k, v = split_heads(self.query(x)), split_heads(self.key(x)), split_heads(self.value(x))
        scores = (q @ ops.transpose(k, -1, -2)) * (1.0 / math.sqrt(self.head_dim)) + mask_bias
        context = ops.softmax(scores) @ v
        return ops.reshape(ops.permute(context, [0, 2, 1, 3]), [batch, seq, h])


class BertProjection(Module):
    """``LayerNorm(dense(x) + residual)``: BERT's ``*.output`` blocks."""

    def __init__(self, in_dim: int, out_dim: int, eps: float) -> None:
        super().__init__()
        self.dense = _linear(in_dim, out_dim)
        self.LayerNorm = _layer_norm(out_dim, eps)

    def __call__(self, x: TensorValue, residual: TensorValue) -> TensorValue:
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(Module):
    """Self-attention with its output projection, residual and LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.self = BertSelfAttention(config)
        self.output = BertProjection(h, h, config.layer_norm_eps)

    def __call__(self, x: TensorValue, mask_bias: TensorValue) -> TensorValue:
        return self.output(self.self(x, mask_bias), x)


class BertIntermediate(Module):
    """The feed-forward block's first half: ``gelu(dense(x))`` with erf-GELU."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = _linear(config.hidden_size, config.intermediate_size)

    def __call__(self, x: TensorValue) -> TensorValue:
        return ops.gelu(self.dense(x))


class BertLayer(Module):
    """One encoder layer: attention, then ``LayerNorm(x + W2 gelu(W1 x))``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertProjection(config.intermediate_size, config.hidden_size,
                                     config.layer_norm_eps)

    def __call__(self, x: TensorValue, mask_bias: TensorValue) -> TensorValue:
        a = self.attention(x, mask_bias)
        return self.output(self.intermediate(a), a)


class BertEncoder(Module):
    """The stack of encoder layers (``encoder.layer.N.*``).

    With ``use_subgraphs`` (the default) the layers are one subgraph, built from the first
    layer and called with each layer's weights (``ops.call(..., prefix=)``): the compiler
    schedules a layer's code once instead of once per layer (all-MiniLM-L6-v2's cold compile
    about 3x shorter), and the graph computes the same numbers.
    """

    def __init__(self, config: BertConfig, use_subgraphs: bool = True) -> None:
        super().__init__()
        self.layer = LayerList([BertLayer(config) for _ in range(config.num_hidden_layers)])
        self.use_subgraphs = use_subgraphs

    def __call__(self, x: TensorValue, mask_bias: TensorValue) -> TensorValue:
        layers = list(self.layer)
        if not self.use_subgraphs or len(layers) < 2:
            for layer in layers:
                x = layer(x, mask_bias)
            return x
        sub = layers[0].build_subgraph("bert_layer", [x.type, mask_bias.type],
                                       weight_prefix=_prefix(layers[0]))
        for layer in layers:
            (x,) = ops.call(sub, x, mask_bias, prefix=_prefix(layer))
        return x


def _prefix(layer: BertLayer) -> str:
    """The checkpoint prefix of ``layer``'s weights (``encoder.layer.3.``)."""
    name = layer.attention.self.query.weight.name
    local = "attention.self.query.weight"
    if not name.endswith(local):
        raise ValueError(f"BERT layer weight {name!r} is not named ...{local}")
    return name[:-len(local)]


class SentenceBert(Module):
    """The sentence-embedding model: BERT encoder, mean pooling over the mask, L2
    normalization. Its weights are named as in a Hugging Face ``BertModel`` checkpoint."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)

    def __call__(self, input_ids: TensorValue, attention_mask: TensorValue,
                 token_type_ids: TensorValue) -> TensorValue:
        x = self.encoder(self.embeddings(input_ids, token_type_ids),
                         attention_mask_bias(attention_mask))
        return l2_normalize(mean_pooling(x, attention_mask))


def mean_pooling(x: TensorValue, attention_mask: TensorValue) -> TensorValue:
    """The mean of the token states over the mask: [batch, seq, hidden] -> [batch, hidden]
    (a row without tokens divides by 1e-9, as sentence-transformers does)."""
    m = ops.unsqueeze(ops.cast(attention_mask, DType.float32), -1)
    summed = ops.sum(x * m, axis=1)
    count = ops.max(ops.sum(m, axis=1), 1e-9)
    return ops.squeeze(summed / count, 1)


def l2_normalize(x: TensorValue) -> TensorValue:
    """Each row divided by its L2 norm (at least 1e-12, as ``torch.nn.functional.normalize``)."""
    norm = ops.sqrt(ops.sum(x * x, axis=-1))
    return x / ops.max(norm, 1e-12)


def build_graph(config: BertConfig, name: str = "bert_embeddings",
                model: SentenceBert | None = None) -> Graph:
    """The sentence-embedding graph of ``model`` (a new :class:`SentenceBert` if None).

    Inputs (int64, ``[batch, seq_len]``, both dims symbolic): ``input_ids``,
    ``attention_mask`` (1 for tokens, 0 for padding), ``token_type_ids``. Output: float32
    ``[batch, hidden_size]``, unit rows. Its weights are named as in the checkpoint
    (:func:`~max.pipelines.architectures.bert.weights.weight_shapes`) and are given at load
    time: ``session.load(graph, weights_registry=load_state(path, config))``.
    """
    model = model or SentenceBert(config)
    ids_type = TensorType(DType.int64, [Dim("batch"), Dim("seq_len")], CPU)
    return Graph(name, model, input_types=[ids_type, ids_type, ids_type])
