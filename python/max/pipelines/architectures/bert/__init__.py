"""BERT sentence encoders (all-MiniLM-L6-v2 and its family), built with ``max.nn``.

    from max.pipelines.architectures.bert import SentenceEmbedder, minilm_path

    embed = SentenceEmbedder(minilm_path())
    vectors = embed(["A cat sits.", "A dog runs in the park."])  # [2, 384], unit rows
"""

from __future__ import annotations

from max.pipelines.architectures.bert.config import BertConfig
from max.pipelines.architectures.bert.embedder import MINILM_PACKAGE, SentenceEmbedder, minilm_path
from max.pipelines.architectures.bert.graph import (
    BertAttention,
    BertEmbeddings,
    BertEncoder,
    BertLayer,
    SentenceBert,
    attention_mask_bias,
    build_graph,
    l2_normalize,
    mean_pooling,
)
from max.pipelines.architectures.bert.weights import load_state, weight_shapes

__all__ = [
    "MINILM_PACKAGE",
    "BertAttention",
    "BertConfig",
    "BertEmbeddings",
    "BertEncoder",
    "BertLayer",
    "SentenceBert",
    "SentenceEmbedder",
    "attention_mask_bias",
    "build_graph",
    "l2_normalize",
    "load_state",
    "mean_pooling",
    "minilm_path",
    "weight_shapes",
]
