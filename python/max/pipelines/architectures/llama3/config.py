"""``Llama3Config``: the sizes of a Llama-architecture decoder, read from GGUF metadata.

GGUF files are untrusted: every field is checked for presence, type and consistency (heads
divide the width, grouped-query heads divide the query heads, a RoPE width equal to the head
width) before a graph is built from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from max.graph.weights.load_gguf import gguf_field

# The GGUF architectures this decoder implements (llama.cpp's names).
SUPPORTED_ARCHITECTURES = ("llama",)


@dataclass(frozen=True)
class Llama3Config:
    """The sizes of a Llama decoder (GGUF metadata ``<arch>.*`` keys).

    Attributes:
        vocab_size: Rows of the token embedding (and of the tied output head).
        hidden_size: Width of every token's hidden state (``embedding_length``).
        num_hidden_layers: Decoder blocks (``block_count``).
        num_attention_heads: Query heads (``attention.head_count``).
        num_key_value_heads: Key/value heads (``attention.head_count_kv``); divides the query
            heads (grouped-query attention).
        intermediate_size: Width of the SwiGLU feed-forward block (``feed_forward_length``).
        max_seq_len: The context length (``context_length``).
        rope_theta: The base of the rotary frequencies (``rope.freq_base``).
        rms_norm_eps: Epsilon of every RMSNorm (``attention.layer_norm_rms_epsilon``).
        tie_word_embeddings: Whether the output head is the token embedding (no
            ``output.weight`` in the file).
    """

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    max_seq_len: int
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "intermediate_size", "max_seq_len"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Llama3Config: {key} must be a positive int, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"Llama3Config: hidden_size {self.hidden_size} is not a multiple of "
                             f"num_attention_heads {self.num_attention_heads}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"Llama3Config: num_attention_heads {self.num_attention_heads} is "
                             f"not a multiple of num_key_value_heads {self.num_key_value_heads}")
        if self.head_dim % 2:
            raise ValueError(f"Llama3Config: the head width {self.head_dim} must be even (RoPE "
                             "rotates pairs)")
        for key in ("rope_theta", "rms_norm_eps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"Llama3Config: {key} must be a positive float, got {value!r}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_attention_heads

    @property
    def kv_group(self) -> int:
        """Query heads that share one key/value head."""
        return self.num_attention_heads // self.num_key_value_heads

    @classmethod
    def from_gguf(cls, reader: Any, source: str = "GGUF file") -> Llama3Config:
        """The config of a GGUF file's metadata (a ``gguf.GGUFReader``).

        Raises:
            ValueError: If the architecture is not a Llama one, or a field is missing or
                inconsistent (the message names the file and the key).
        """
        arch = gguf_field(reader, "general.architecture", str, source)
        if arch not in SUPPORTED_ARCHITECTURES:
            raise ValueError(f"{source}: architecture {arch!r} is not supported (supported: "
                             f"{', '.join(SUPPORTED_ARCHITECTURES)})")

        def get(key: str, kind: type, default: Any = None) -> Any:
            return gguf_field(reader, f"{arch}.{key}", kind, source, default)

        heads = get("attention.head_count", int)
        hidden = get("embedding_length", int)
        rope_dim = get("rope.dimension_count", int, hidden // heads if heads else 0)
        tensor_names = {t.name for t in reader.tensors}
        vocab = get("vocab_size", int, None)
        if vocab is None:
            tokens = reader.fields.get("tokenizer.ggml.tokens")
            vocab = len(tokens.data) if tokens is not None else None
        if vocab is None:
            raise ValueError(f"{source}: no {arch}.vocab_size and no tokenizer.ggml.tokens")
        config = cls(vocab_size=vocab, hidden_size=hidden,
                     num_hidden_layers=get("block_count", int),
                     num_attention_heads=heads,
                     num_key_value_heads=get("attention.head_count_kv", int, heads),
                     intermediate_size=get("feed_forward_length", int),
                     max_seq_len=get("context_length", int),
                     rope_theta=float(get("rope.freq_base", float, 10000.0)),
                     rms_norm_eps=float(get("attention.layer_norm_rms_epsilon", float)),
                     tie_word_embeddings="output.weight" not in tensor_names)
        if rope_dim != config.head_dim:
            raise ValueError(f"{source}: {arch}.rope.dimension_count {rope_dim} differs from the "
                             f"head width {config.head_dim}: partial rotary is not supported")
        return config
