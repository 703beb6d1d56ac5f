"""The Llama decoder built with ``max.nn``, its weights named as in a GGUF file.

One block graph serves prefill and decode: it takes the hidden states of ``T`` new tokens per
row (a symbolic dim: the prompt, or one token) and the rows' key/value cache so far, and returns
the new hidden states and the new tokens' keys and values, which the caller writes into its
cache (:class:`~max.nn.kv_cache.ContinuousKVCacheManager`). So the cache is read in place, as
views of the caller's array, and only the new tokens' entries are ever written: nothing copies
the cache. The embedding and the head (the logits of each row's last token) are graphs of their
own (:class:`Llama3`).

Layouts. The cache of one layer is ``[past_len, batch, kv_heads, head_dim]`` (positions
outermost, so the first ``past_len`` positions of every row are one contiguous view of the
caller's ``[max_len, batch, kv_heads, head_dim]`` array). Row ``b`` holds
``cache_lengths[b]`` valid positions; the others are masked. Attention to the cache is a
product-and-sum over ``head_dim`` and over positions (it streams the cache once), attention
among the new tokens a batched matmul with a causal mask; the two share one softmax
(a common maximum, exponentials summed over both).

RoPE. llama.cpp's converter permutes the rows of ``attn_q``/``attn_k`` so that the rotated
pairs are adjacent features ``(2i, 2i + 1)``: the weights are used as stored, with the
interleaved rotation (GGUF's own, ``nn.RotaryEmbedding``), at each row's positions
``cache_lengths[b] + t``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from max.dtype import DType
from max.graph import DeviceRef, Dim, Graph, TensorType, TensorValue, ops
from max.graph.quantization import QuantizationEncoding
from max.nn import Embedding, LayerList, Linear, Module, RMSNorm, RotaryEmbedding
from max.pipelines.architectures.llama3.config import Llama3Config

CPU = DeviceRef.CPU()
F32 = DType.float32
# The score of a masked key: exp(MASK - max) is exactly 0 and never a NaN.
MASK_VALUE = float(np.finfo(np.float32).min)

Encodings = dict[str, QuantizationEncoding | None]

# Projections of one input multiplied as one weight: the weights' rows concatenated, one
# stream of weight rows and one parallel region instead of two or three (at one token a
# step, each region's fork and its first rows' memory latency are a fixed cost). A fused
# weight is derived, not in the checkpoint: the caller builds it with :func:`fused_weights`.
FUSED_PROJECTIONS = {"attn_qkv": ("attn_q", "attn_k", "attn_v"),
                     "ffn_gate_up": ("ffn_gate", "ffn_up")}


def fused_weights(state: dict[str, np.ndarray], prefix: str,
                  encodings: Encodings) -> dict[str, np.ndarray]:
    """The fused weights of the block whose weights are named ``{prefix}attn_q.weight`` and
    so on in ``state``: for each entry of :data:`FUSED_PROJECTIONS` whose parts share one
    encoding, ``{prefix}{fused}.weight``, the parts' rows concatenated (a quantized row is
    whole blocks, so rows concatenate as bytes)."""
    fused = {}
    for name, parts in FUSED_PROJECTIONS.items():
        names = [f"{prefix}{part}.weight" for part in parts]
        if _fusable(names, encodings):
            weight = np.concatenate([state[n] for n in names])
            weight.flags.writeable = False  # immutable, as the file's: its layout is shared
            fused[f"{prefix}{name}.weight"] = weight
    return fused


def _fusable(names: list[str], encodings: Encodings) -> bool:
    return len({encodings.get(n) for n in names}) == 1


def _linear(name: str, in_dim: int, out_dim: int, encodings: Encodings) -> Linear:
    encoding = encodings.get(name)
    return Linear(in_dim, out_dim, DType.uint8 if encoding else F32, CPU, has_bias=False,
                  quantization_encoding=encoding)


class Block(Module):
    """One decoder block: grouped-query attention to the cache and among the new tokens
    (causal), then a SwiGLU feed-forward, each after an RMSNorm and added to the residual.
    Its attributes are GGUF's names (``blk.N.attn_q.weight``: no attention level)."""

    def __init__(self, config: Llama3Config, encodings: Encodings, index: int) -> None:
        super().__init__()
        p = f"blk.{index}."
        c, h = config, config.hidden_size
        kv, f = config.num_key_value_heads * config.head_dim, config.intermediate_size
        self.config = config
        self.attn_norm = RMSNorm(h, F32, c.rms_norm_eps, multiply_before_cast=False)
        self.attn_q = _linear(f"{p}attn_q.weight", h, h, encodings)
        self.attn_k = _linear(f"{p}attn_k.weight", h, kv, encodings)
        self.attn_v = _linear(f"{p}attn_v.weight", h, kv, encodings)
        self.attn_output = _linear(f"{p}attn_output.weight", h, h, encodings)
        self.ffn_norm = RMSNorm(h, F32, c.rms_norm_eps, multiply_before_cast=False)
        self.ffn_gate = _linear(f"{p}ffn_gate.weight", h, f, encodings)
        self.ffn_up = _linear(f"{p}ffn_up.weight", h, f, encodings)
        self.ffn_down = _linear(f"{p}ffn_down.weight", f, h, encodings)
        # The fused projections (a plain dict: their weights are derived, not the module's).
        self.fused: dict[str, Linear] = {}
        for name, parts in FUSED_PROJECTIONS.items():
            linears = [getattr(self, part) for part in parts]
            if _fusable([f"{p}{part}.weight" for part in parts], encodings):
                encoding = linears[0].quantization_encoding
                self.fused[name] = Linear(h, sum(lin.out_dim for lin in linears),
                                          DType.uint8 if encoding else F32, CPU,
                                          quantization_encoding=encoding, name=f"{p}{name}")

    def __call__(self, x: TensorValue, rope: RotaryEmbedding, positions: TensorValue,
                 lengths: TensorValue, k_past: TensorValue, v_past: TensorValue,
                 ) -> tuple[TensorValue, TensorValue, TensorValue]:
        a, k, v = self.attention(self.attn_norm(x), rope, positions, lengths, k_past, v_past)
        h = x + a
        y = self.ffn_norm(h)
        if "ffn_gate_up" in self.fused:
            gate, up = ops.split(self.fused["ffn_gate_up"](y), [self.ffn_gate.out_dim,
                                                                 self.ffn_up.out_dim], axis=-1)
        else:
            gate, up = self.ffn_gate(y), self.ffn_up(y)
        return h + self.ffn_down(ops.silu(gate) * up), k, v

    def attention(self, x: TensorValue, rope: RotaryEmbedding, positions: TensorValue,
                  lengths: TensorValue, k_past: TensorValue, v_past: TensorValue,
                  ) -> tuple[TensorValue, TensorValue, TensorValue]:
        """``x`` ``[B, T, hidden]``; ``k_past``/``v_past`` ``[P, B, kv_heads, head_dim]``
        with ``lengths[b]`` valid positions in row ``b``. Returns the output ``[B, T, hidden]``
        and the new keys and values ``[B, T, kv_heads, head_dim]`` (keys rotated)."""
        c = self.config
        hk, g, d = c.num_key_value_heads, c.kv_group, c.head_dim
        batch, seq, _ = x.shape
        past = k_past.shape[0]
        scale = 1.0 / math.sqrt(d)
        if "attn_qkv" in self.fused:
            q, k, v = ops.split(self.fused["attn_qkv"](x), [hk * g * d, hk * d, hk * d],
                                axis=-1)
        else:
            q, k, v = self.attn_q(x), self.attn_k(x), self.attn_v(x)
        q = rope(ops.reshape(q, [batch, seq, hk * g, d]), positions=positions) * scale
        k = rope(ops.reshape(k, [batch, seq, hk, d]), positions=positions)
        v = ops.reshape(v, [batch, seq, hk, d])
        # Query head j uses key/value head j // g: [B, T, hk, g, d] -> [B, hk, g, T, d].
        qg = ops.permute(ops.reshape(q, [batch, seq, hk, g, d]), [0, 2, 3, 1, 4])

        # Scores against the cache, positions last ([B, hk, g, T, P]) so that the mask,
        # maximum and exponentials run along contiguous positions: a product-sum over the head
        # width, each cached key read in place (the compiler folds the permute of the cache
        # into the product's indexing: mo-fold-transposes).
        kp = ops.permute(ops.reshape(k_past, [past, batch, hk, 1, 1, d]), [1, 2, 3, 4, 0, 5])
        s_past = ops.squeeze(ops.sum(ops.unsqueeze(qg, -2) * kp, axis=-1), -1)
        j = ops.range(0, past, 1, dtype=DType.int64, device=CPU)
        valid = ops.reshape(j, [1, past]) < ops.reshape(lengths, [batch, 1])  # [B, P]
        s_past = ops.where(ops.reshape(valid, [batch, 1, 1, 1, past]), s_past, MASK_VALUE)

        # Scores among the new tokens, [B, hk, g, T, T], causal.
        qm = ops.reshape(qg, [batch, hk, g * seq, d])
        kn = ops.permute(k, [0, 2, 3, 1])  # [B, hk, d, T]
        s_new = ops.reshape(ops.matmul(qm, kn), [batch, hk, g, seq, seq])
        t = ops.range(0, seq, 1, dtype=DType.int64, device=CPU)
        causal = ops.reshape(t, [1, seq]) <= ops.reshape(t, [seq, 1])  # [query, key]
        s_new = ops.where(causal, s_new, MASK_VALUE)

        # One softmax over both: a common maximum, exponentials summed over both.
        m = ops.max(ops.squeeze(ops.max(s_past, axis=-1), -1),
                    ops.squeeze(ops.max(s_new, axis=-1), -1))  # [B, hk, g, T]
        e_past = ops.exp(s_past - ops.unsqueeze(m, -1))  # [B, hk, g, T, P]
        e_new = ops.exp(s_new - ops.unsqueeze(m, -1))  # [B, hk, g, T, T]
        denom = (ops.squeeze(ops.sum(e_past, axis=-1), -1)
                 + ops.squeeze(ops.sum(e_new, axis=-1), -1))
        # Values of the cache: a product-sum over positions, each cached value row read once
        # in place, the head width contiguous.
        vp = ops.permute(ops.reshape(v_past, [past, batch, hk, 1, 1, d]), [1, 2, 3, 4, 0, 5])
        o_past = ops.squeeze(ops.sum(ops.unsqueeze(e_past, -1) * vp, axis=-2), -2)
        vn = ops.permute(v, [0, 2, 1, 3])  # [B, hk, T, d]
        o_new = ops.matmul(ops.reshape(e_new, [batch, hk, g * seq, seq]), vn)
        o = (o_past + ops.reshape(o_new, [batch, hk, g, seq, d])) / ops.unsqueeze(denom, -1)
        o = ops.reshape(ops.permute(o, [0, 3, 1, 2, 4]), [batch, seq, c.hidden_size])
        return self.attn_output(o), k, v


class Llama3(Module):
    """The decoder: token embedding, blocks, final RMSNorm, output head (tied to the embedding
    when the file has no ``output.weight``). Its weights carry the GGUF names.

    It is compiled as graphs of its parts, not as one: the embedding, one block (and the same
    block for one token a row, the decode step), and the head. Every block has the same shapes, so one compiled block serves all of them, each loaded with its
    own weights (an artifact is independent of its weights): compile time is that of one
    block, not of ``num_hidden_layers``.

    Args:
        config: The sizes.
        encodings: The quantization encoding of each weight by GGUF name (None: float32).
    """

    def __init__(self, config: Llama3Config, encodings: Encodings) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_size
        embd = encodings.get("token_embd.weight")
        self.token_embd = Embedding(config.vocab_size, h, DType.uint8 if embd else F32, CPU,
                                    quantization_encoding=embd)
        self.blk = LayerList([Block(config, encodings, i)
                              for i in range(config.num_hidden_layers)])
        self.output_norm = RMSNorm(h, F32, config.rms_norm_eps, multiply_before_cast=False)
        if not config.tie_word_embeddings:
            self.output = _linear("output.weight", h, config.vocab_size, encodings)
        # The table covers 2 * max_seq_len positions: a finished row of a decode batch still
        # runs (masked) one position past the context.
        self.rope = RotaryEmbedding(h, config.num_attention_heads, config.rope_theta,
                                    config.max_seq_len, head_dim=config.head_dim,
                                    interleaved=True)

    def embed(self, tokens: TensorValue) -> TensorValue:
        """``tokens`` int64 ``[B, T]`` -> the hidden states ``[B, T, hidden]``."""
        return self.token_embd(tokens)

    def block(self, index: int, x: TensorValue, lengths: TensorValue, k_past: TensorValue,
              v_past: TensorValue) -> tuple[TensorValue, TensorValue]:
        """Block ``index`` on ``x`` ``[B, T, hidden]``: the new hidden states and the new
        tokens' keys and values, ``[2, T, B, kv_heads, head_dim]`` (the cache's layout)."""
        batch, seq, _ = x.shape
        t = ops.range(0, seq, 1, dtype=DType.int64, device=CPU)
        positions = ops.reshape(lengths, [batch, 1]) + ops.reshape(t, [1, seq])
        x, k, v = self.blk[index](x, self.rope, positions, lengths, k_past, v_past)
        return x, ops.stack([ops.permute(k, [1, 0, 2, 3]), ops.permute(v, [1, 0, 2, 3])])

    def head(self, x: TensorValue) -> TensorValue:
        """The logits ``[B, vocab]`` of each row's last token of ``x`` ``[B, T, hidden]``."""
        last = self.output_norm(x[:, -1])
        if not self.config.tie_word_embeddings:
            return self.output(last)
        w = self.token_embd.weight
        enc = self.token_embd.quantization_encoding
        return ops.qmatmul(enc, None, last, w) if enc else last @ TensorValue(w).T


@dataclass(frozen=True)
class LlamaGraphs:
    """The three graphs of a :class:`Llama3` (see its docstring).

    - ``embed``: ``tokens`` int64 ``[batch, seq_len]`` -> float32 ``[batch, seq_len, hidden]``.
    - ``block``: block 0's graph; every block runs it with its own weights. Inputs: the
      hidden states, ``cache_lengths`` int64 ``[batch]``, the layer's ``k`` and ``v`` cache,
      float32 ``[past_len, batch, kv_heads, head_dim]``. Outputs: the hidden states and the
      new keys and values ``[2, seq_len, batch, kv_heads, head_dim]``.
    - ``decode_block``: the same with ``seq_len`` 1, for decode steps. A static token count
      gives the kernels static shapes: the scores among the new tokens are then a 3 x 1
      matmul per head instead of a masked 8 x 32 tile (a decode step 7.35 -> 6.65 ms).
    - ``head``: the hidden states -> float32 logits ``[batch, vocab]`` of each row's last
      token.
    """

    embed: Graph
    block: Graph
    decode_block: Graph
    head: Graph


def build_graphs(model: Llama3, name: str = "llama3") -> LlamaGraphs:
    """The embedding, block and head graphs of ``model``; their weights carry the GGUF names
    (the block's those of ``blk.0``) and are given at load time (``weights_registry``)."""
    c = model.config
    model.raw_state_dict()  # fixes the weights' names (blk.0.attn_q.weight, ...)
    batch, seq, past = Dim("batch"), Dim("seq_len"), Dim("past_len")
    hidden = TensorType(F32, [batch, seq, c.hidden_size], CPU)
    one = TensorType(F32, [batch, 1, c.hidden_size], CPU)
    kv = TensorType(F32, [past, batch, c.num_key_value_heads, c.head_dim], CPU)
    tokens = TensorType(DType.int64, [batch, seq], CPU)
    lengths = TensorType(DType.int64, [batch], CPU)
    return LlamaGraphs(
        embed=Graph(f"{name}_embed", model.embed, input_types=[tokens]),
        block=Graph(f"{name}_block", lambda *xs: model.block(0, *xs),
                    input_types=[hidden, lengths, kv, kv]),
        decode_block=Graph(f"{name}_decode_block", lambda *xs: model.block(0, *xs),
                           input_types=[one, lengths, kv, kv]),
        head=Graph(f"{name}_head", model.head, input_types=[hidden]))
