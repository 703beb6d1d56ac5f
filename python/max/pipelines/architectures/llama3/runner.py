"""``Llama3Runner``: a Llama GGUF checkpoint compiled and loaded, run one step at a time.

A step takes ``T`` new tokens for each of ``B`` rows and the rows' cache inputs
(:class:`~max.nn.kv_cache.ContinuousKVCacheInputs`), and returns the logits of each row's last
token and, per layer, the new keys and values for the cache manager to write. The embedding,
one block (twice: any token count, and one token for decode steps) and the head are compiled
once (see :class:`~.model.Llama3`); each block artifact is loaded once per layer with that
layer's weights, read in place from the mapped file (those the kernels read rearranged are
copied once, and the two block artifacts share the copy).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from max.dtype import DType
from max.nn.kv_cache import ContinuousKVCacheInputs, KVCacheParams, KVCacheStrategy
from max.pipelines.architectures.llama3.model import Llama3, build_graphs, fused_weights
from max.pipelines.architectures.llama3.weights import LlamaCheckpoint, read_checkpoint


class Llama3Runner:
    """A Llama decoder ready to run.

    Args:
        path: The GGUF file.
        session: The ``InferenceSession`` to load the graphs in (a new CPU one if None).

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is not a valid Llama GGUF checkpoint (the message says why).
    """

    def __init__(self, path: str | os.PathLike[str], session: Any = None) -> None:
        from max.driver import CPU
        from max.engine import InferenceSession

        start = time.perf_counter()
        self.checkpoint: LlamaCheckpoint = read_checkpoint(path)
        self.config = c = self.checkpoint.config
        self.model = Llama3(c, self.checkpoint.encodings)
        self.model.load_state_dict(self.checkpoint.state)  # checks every name, shape, dtype
        graphs = build_graphs(self.model)
        self.session = session or InferenceSession(devices=[CPU()])
        state = self.model.state_dict()  # the mapped file's arrays, kept alive with self

        def pick(*names: str) -> dict[str, Any]:
            return {n: state[n] for n in names if n in state}

        self._embed = self.session.load(graphs.embed, weights_registry=pick("token_embd.weight"))
        self._head = self.session.load(graphs.head, weights_registry=pick(
            "token_embd.weight", "output_norm.weight", "output.weight"))
        self._blocks, self._decode_blocks = [], []
        for i in range(c.num_hidden_layers):
            prefix = f"blk.{i}."
            layer = {k: v for k, v in state.items() if k.startswith(prefix)}
            layer.update(fused_weights(layer, prefix, self.checkpoint.encodings))
            registry = {"blk.0." + k[len(prefix):]: v for k, v in layer.items()}
            self._blocks.append(self.session.load(graphs.block, weights_registry=registry))
            # Same arrays: the weights' rearranged copies are shared, not made twice.
            self._decode_blocks.append(self.session.load(graphs.decode_block,
                                                         weights_registry=registry))
        self.load_seconds = time.perf_counter() - start

    @property
    def kv_params(self) -> KVCacheParams:
        """The cache this model reads: float32, continuous."""
        c = self.config
        return KVCacheParams(DType.float32, c.num_key_value_heads, c.head_dim,
                             cache_strategy=KVCacheStrategy.CONTINUOUS)

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    def step(self, tokens: np.ndarray, cache: ContinuousKVCacheInputs,
             ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Runs ``tokens`` int64 ``[B, T]`` through the model.

        Returns:
            The logits of each row's last token, float32 ``[B, vocab]``, and per layer the new
            keys and values ``[2, T, B, n_kv_heads, head_dim]``.

        Raises:
            ValueError: If a token id is outside the vocabulary.
        """
        vocab = self.config.vocab_size
        if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab):
            bad = tokens[(tokens < 0) | (tokens >= vocab)].ravel()[0]
            raise ValueError(f"Llama3Runner: token id {int(bad)} is outside the vocabulary "
                             f"[0, {vocab})")
        (x,) = self._embed.execute(tokens)
        lengths = cache.cache_lengths
        new_kv = []
        blocks = self._decode_blocks if tokens.shape[1] == 1 else self._blocks
        for block, (k, v) in zip(blocks, cache.layers):
            x, kv = block.execute(x, lengths, k, v)
            new_kv.append(kv.to_numpy())
        (logits,) = self._head.execute(x)
        return logits.to_numpy(), new_kv
