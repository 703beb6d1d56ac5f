"""``BertConfig``: the sizes of a BERT encoder, read from a checkpoint's ``config.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The keys of a Hugging Face BERT config.json this encoder reads, with the type each must have.
_INT_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
             "intermediate_size", "max_position_embeddings", "type_vocab_size")


@dataclass(frozen=True)
class BertConfig:
    """The sizes of a BERT encoder (Hugging Face ``config.json`` names).

    Attributes:
        vocab_size: Rows of the word embedding table.
        hidden_size: Width of every token's hidden state.
        num_hidden_layers: Encoder layers.
        num_attention_heads: Heads of each self-attention; divides ``hidden_size``.
        intermediate_size: Width of the feed-forward block.
        max_position_embeddings: Rows of the position embedding table (the longest sequence).
        type_vocab_size: Rows of the token type embedding table.
        layer_norm_eps: Epsilon of every LayerNorm.
        max_seq_length: The tokenizer's truncation length (at most
            ``max_position_embeddings``).
    """

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float = 1e-12
    max_seq_length: int = 512

    def __post_init__(self) -> None:
        for key in _INT_KEYS + ("max_seq_length",):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"BertConfig: {key} must be a positive int, got {value!r}")
        eps = self.layer_norm_eps
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < 1:
            raise ValueError(f"BertConfig: layer_norm_eps must be a float in (0, 1), got {eps!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"BertConfig: hidden_size {self.hidden_size} is not a multiple of "
                             f"num_attention_heads {self.num_attention_heads}")
        if self.max_seq_length > self.max_position_embeddings:
            raise ValueError(f"BertConfig: max_seq_length {self.max_seq_length} exceeds "
                             f"max_position_embeddings {self.max_position_embeddings}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, data: dict[str, Any], max_seq_length: int | None = None) -> BertConfig:
        """The config of a ``config.json`` already parsed; unknown keys are ignored.

        Raises:
            ValueError: If a key is missing or has a bad value, or the model is not a BERT
                encoder with absolute positions and (erf) GELU.
        """
        if not isinstance(data, dict):
            raise ValueError(f"BertConfig: expected a JSON object, got {type(data).__name__}")
        missing = [k for k in _INT_KEYS if k not in data]
        if missing:
            raise ValueError(f"BertConfig: config.json lacks {', '.join(missing)}")
        # Variants this encoder does not compute: refuse them rather than compute another model.
        for key, want in (("hidden_act", "gelu"), ("position_embedding_type", "absolute"),
                          ("model_type", "bert")):
            if data.get(key, want) != want:
                raise ValueError(f"BertConfig: {key} {data[key]!r} is not supported "
                                 f"(only {want!r})")
        positions = data["max_position_embeddings"]
        return cls(**{k: data[k] for k in _INT_KEYS},
                   layer_norm_eps=data.get("layer_norm_eps", 1e-12),
                   max_seq_length=positions if max_seq_length is None else max_seq_length)

    @classmethod
    def from_model_dir(cls, path: str | Path) -> BertConfig:
        """The config of a model folder: ``config.json``, and the truncation length of
        ``sentence_bert_config.json`` (sentence-transformers) where present, else of
        ``tokenizer.json``, else ``max_position_embeddings``.

        Raises:
            FileNotFoundError: If ``config.json`` is missing.
            ValueError: If a file is not valid JSON or has a bad value.
        """
        path = Path(path)
        data = _read_json(path / "config.json")
        length = None
        sbert = path / "sentence_bert_config.json"
        tokenizer = path / "tokenizer.json"
        if sbert.is_file():
            length = _read_json(sbert).get("max_seq_length")
        elif tokenizer.is_file():
            length = (_read_json(tokenizer).get("truncation") or {}).get("max_length")
        return cls.from_dict(data, length)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
