"""The BERT encoder as a ``max.graph`` graph, one function per block.

Each block takes the weights' name prefix (``"encoder.layer.3.attention."``) and creates its
:class:`~max.graph.Weight` objects under the checkpoint's names, so that the compiled graph
holds no weight: they are bound when the model is loaded (``weights_registry``, see
:func:`~max.pipelines.architectures.bert.weights.load_state`). The computation is Hugging
Face's ``BertModel`` in eval mode (no dropout), followed by sentence-transformers' mean
pooling and L2 normalization.
"""

from __future__ import annotations

import math

import numpy as np

from max.dtype import DType
from max.graph import DeviceRef, Dim, Graph, TensorType, TensorValue, Weight, ops
from max.pipelines.architectures.bert.config import BertConfig

CPU = DeviceRef.CPU()
# Added to the attention scores of padding keys: the float32 minimum, as Hugging Face's BERT
# does, so that a padding key's probability is exactly 0 (a finite value keeps 0 * it finite).
MASK_VALUE = float(np.finfo(np.float32).min)


def _weight(name: str, *shape: int) -> Weight:
    return Weight(name, DType.float32, shape, CPU)


def linear(x: TensorValue, prefix: str, in_dim: int, out_dim: int) -> TensorValue:
    """``x @ W.T + b`` with ``W`` [out_dim, in_dim] (PyTorch's layout) at ``prefix + "weight"``."""
    w = _weight(prefix + "weight", out_dim, in_dim)
    return x @ ops.transpose(w, 0, 1) + _weight(prefix + "bias", out_dim)


def layer_norm(x: TensorValue, prefix: str, dim: int, eps: float) -> TensorValue:
    """LayerNorm over the last axis, gamma and beta at ``prefix + "weight"`` / ``"bias"``."""
    return ops.layer_norm(x, _weight(prefix + "weight", dim), _weight(prefix + "bias", dim), eps)


def embeddings(config: BertConfig, prefix: str, input_ids: TensorValue,
               token_type_ids: TensorValue) -> TensorValue:
    """Word + position + token type embeddings, then LayerNorm: [batch, seq, hidden]."""
    h = config.hidden_size
    seq = input_ids.shape[1]
    positions = ops.range(0, seq, 1, dtype=DType.int64, device=CPU)
    words = ops.gather(_weight(prefix + "word_embeddings.weight", config.vocab_size, h),
                       input_ids, 0)
    pos = ops.gather(_weight(prefix + "position_embeddings.weight",
                             config.max_position_embeddings, h), positions, 0)
    types = ops.gather(_weight(prefix + "token_type_embeddings.weight", config.type_vocab_size,
                               h), token_type_ids, 0)
    return layer_norm(words + pos + types, prefix + "LayerNorm.", h, config.layer_norm_eps)


def attention_mask_bias(attention_mask: TensorValue) -> TensorValue:
    """[batch, seq] of 1 (token) / 0 (padding) -> [batch, 1, 1, seq] to add to the scores:
    0 for tokens, :data:`MASK_VALUE` for padding."""
    m = ops.cast(attention_mask, DType.float32)
    batch, seq = attention_mask.shape
    return ops.reshape((1.0 - m) * MASK_VALUE, [batch, 1, 1, seq])


def self_attention(config: BertConfig, prefix: str, x: TensorValue,
                   mask_bias: TensorValue) -> TensorValue:
    """Multi-head self-attention with its output projection, residual and LayerNorm
    (``prefix`` is ``encoder.layer.N.attention.``)."""
    h, heads, d = config.hidden_size, config.num_attention_heads, config.head_dim
    batch, seq = x.shape[0], x.shape[1]

    def split_heads(t: TensorValue) -> TensorValue:  # [b, s, h] -> [b, heads, s, d]
        return ops.permute(ops.reshape(t, [batch, seq, heads, d]), [0, 2, 1, 3])

    q, k, v = (split_heads(linear(x, f"{prefix}self.{name}.", h, h))
               for name in ("query", "key", "value"))
    scores = (q @ ops.transpose(k, -1, -2)) * (1.0 / math.sqrt(d)) + mask_bias
    context = ops.softmax(scores) @ v
    context = ops.reshape(ops.permute(context, [0, 2, 1, 3]), [batch, seq, h])
    out = linear(context, prefix + "output.dense.", h, h)
    return layer_norm(out + x, prefix + "output.LayerNorm.", h, config.layer_norm_eps)


def feed_forward(config: BertConfig, prefix: str, x: TensorValue) -> TensorValue:
    """``LayerNorm(x + W2 gelu(W1 x))`` with erf-GELU (``prefix`` is ``encoder.layer.N.``)."""
    h, ffn = config.hidden_size, config.intermediate_size
    inner = ops.gelu(linear(x, prefix + "intermediate.dense.", h, ffn))
    out = linear(inner, prefix + "output.dense.", ffn, h)
    return layer_norm(out + x, prefix + "output.LayerNorm.", h, config.layer_norm_eps)


def encoder_layer(config: BertConfig, prefix: str, x: TensorValue,
                  mask_bias: TensorValue) -> TensorValue:
    """One encoder layer (``prefix`` is ``encoder.layer.N.``)."""
    return feed_forward(config, prefix, self_attention(config, prefix + "attention.", x,
                                                       mask_bias))


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


def build_graph(config: BertConfig, name: str = "bert_embeddings") -> Graph:
    """The sentence-embedding graph: BERT encoder, mean pooling, L2 normalization.

    Inputs (int64, ``[batch, seq_len]``, both dims symbolic): ``input_ids``,
    ``attention_mask`` (1 for tokens, 0 for padding), ``token_type_ids``. Output: float32
    ``[batch, hidden_size]``, unit rows. Its weights are named as in the checkpoint
    (:func:`~max.pipelines.architectures.bert.weights.weight_shapes`) and are given at load
    time: ``session.load(graph, weights_registry=load_state(path, config))``.
    """
    ids_type = TensorType(DType.int64, [Dim("batch"), Dim("seq_len")], CPU)

    def forward(input_ids: TensorValue, attention_mask: TensorValue,
                token_type_ids: TensorValue) -> TensorValue:
        x = embeddings(config, "embeddings.", input_ids, token_type_ids)
        mask_bias = attention_mask_bias(attention_mask)
        for i in range(config.num_hidden_layers):
            x = encoder_layer(config, f"encoder.layer.{i}.", x, mask_bias)
        return l2_normalize(mean_pooling(x, attention_mask))

    return Graph(name, forward, input_types=[ids_type, ids_type, ids_type])
