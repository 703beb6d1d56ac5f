"""KV cache inputs (``KVCacheInputs`` and its kinds) and the CPU cache manager.

:class:`ContinuousKVCacheManager` owns one array per model,
``[num_layers, 2, max_seq_len, max_batch_size, n_kv_heads, head_dim]``: for each layer the
keys (0) and values (1) of every sequence, positions outermost. A sequence occupies one row of
the batch axis (its *slot*) for its whole life. A step's inputs are views of that array (the
first ``past_len`` positions of every slot are one contiguous block per layer), and after the
step only the new tokens' keys and values are written, at each row's own length: nothing
copies the cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from max.runtime import hugepages
from max.nn.kv_cache.cache_params import KVCacheParams, KVCacheStrategy


class KVCacheInputs:
    """A base class that holds KV cache related (Tensor) inputs. It is meant to be
    subclassed by concrete KV cache input types."""

    def __iter__(self) -> Iterator[object]:
        """The inputs in the order the model's graph takes them."""
        return iter(vars(self).values())

    def __len__(self) -> int:
        return len(vars(self))


@dataclass
class KVCacheInputsSequence(KVCacheInputs):
    """A sequence of :class:`KVCacheInputs` (one per step of a multistep execution)."""

    kv_cache_inputs: Sequence[KVCacheInputs]

    def __iter__(self) -> Iterator[object]:
        return iter(self.kv_cache_inputs)


@dataclass
class RaggedKVCacheInputs(KVCacheInputs):
    """The inputs of a KV cache used together with ragged tensors (paged caches)."""

    blocks: object
    cache_lengths: object
    lookup_table: object
    max_lengths: object


@dataclass
class ContinuousKVCacheInputs(KVCacheInputs):
    """One step's cache inputs from a :class:`ContinuousKVCacheManager`.

    Attributes:
        cache_lengths: int64 ``[batch]``: the positions each row already holds.
        layers: per layer, ``(keys, values)``, each float ``[past_len, batch, n_kv_heads,
            head_dim]`` (views of the manager's array when the rows are all of its slots).
    """

    cache_lengths: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]

    def __iter__(self) -> Iterator[object]:
        yield self.cache_lengths
        for k, v in self.layers:
            yield k
            yield v


class ContinuousKVCacheManager:
    """The KV cache of a model on the CPU: ``max_batch_size`` slots of ``max_seq_len``
    positions for each of ``num_layers`` layers.

    Args:
        params: The cache's dtype, heads and width (strategy ``CONTINUOUS`` or
            ``MODEL_DEFAULT``).
        num_layers: The model's layers.
        max_batch_size: Sequences held at once.
        max_seq_len: Positions per sequence (prompt and generated tokens).

    Raises:
        NotImplementedError: For the paged strategy, prefix caching or host swapping.
        ValueError: For non-positive sizes.
    """

    def __init__(self, params: KVCacheParams, num_layers: int, max_batch_size: int,
                 max_seq_len: int) -> None:
        if params.cache_strategy not in (KVCacheStrategy.CONTINUOUS,
                                         KVCacheStrategy.MODEL_DEFAULT):
            raise NotImplementedError(f"ContinuousKVCacheManager: cache strategy "
                                      f"{params.cache_strategy.value!r} is not supported on the "
                                      "CPU (use 'continuous' or 'model_default')")
        if params.enable_prefix_caching or params.enable_kvcache_swapping_to_host:
            raise NotImplementedError("ContinuousKVCacheManager: prefix caching and swapping to "
                                      "host are not supported")
        for name, value in (("num_layers", num_layers), ("max_batch_size", max_batch_size),
                            ("max_seq_len", max_seq_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"ContinuousKVCacheManager: {name} must be a positive int, "
                                 f"got {value!r}")
        self.params = params
        self.num_layers, self.max_batch_size, self.max_seq_len = (num_layers, max_batch_size,
                                                                  max_seq_len)
        shape = (num_layers, 2, max_seq_len, max_batch_size, params.n_kv_heads, params.head_dim)
        # Fresh pages mapped lazily: only the positions written cost memory. Huge pages: each
        # token's entries would otherwise fault in new 4 KiB pages, 30 -> 7 us a layer's
        # commit at batch 8.
        self.cache = hugepages.zeros(shape, params.dtype.to_numpy())
        self.lengths = np.zeros(max_batch_size, np.int64)
        self._free = list(range(max_batch_size))[::-1]

    @property
    def free_slots(self) -> int:
        """Slots not claimed."""
        return len(self._free)

    def claim(self) -> int:
        """A free slot for a new sequence (its length 0).

        Raises:
            RuntimeError: If every slot is in use.
        """
        if not self._free:
            raise RuntimeError(f"ContinuousKVCacheManager: all {self.max_batch_size} slots are "
                               "in use; release one first")
        slot = self._free.pop()
        self.lengths[slot] = 0
        return slot

    def release(self, slot: int) -> None:
        """Frees ``slot`` for another sequence."""
        self._check_slots([slot])
        if slot in self._free:
            raise ValueError(f"ContinuousKVCacheManager: slot {slot} is not in use")
        self.lengths[slot] = 0
        self._free.append(slot)

    def _check_slots(self, slots: Sequence[int]) -> None:
        for s in slots:
            if not 0 <= s < self.max_batch_size:
                raise ValueError(f"ContinuousKVCacheManager: slot {s} is out of range "
                                 f"[0, {self.max_batch_size})")

    def fetch(self, slots: Sequence[int], num_new: int,
              check: Sequence[int] | None = None) -> ContinuousKVCacheInputs:
        """The cache inputs of a step that adds ``num_new`` tokens to each of ``slots``
        (``check``: the slots that will keep them, all if None; the others' new entries are
        not written).

        With every slot in order (batched decode) or one slot whose cache is empty (a
        prompt), the inputs are views of the cache; any other selection is gathered (a copy of
        the used positions of those rows).

        Raises:
            ValueError: If a slot is out of range or the step would pass ``max_seq_len``.
        """
        slots = list(slots)
        self._check_slots(slots)
        lengths = self.lengths[slots]
        kept = int(self.lengths[list(slots if check is None else check)].max(initial=0))
        if kept + num_new > self.max_seq_len:
            raise ValueError(f"ContinuousKVCacheManager: {num_new} new tokens after {kept} "
                             f"would pass the cache's max_seq_len {self.max_seq_len}")
        past = max(int(lengths.max(initial=0)), 1)  # at least one (masked) position
        c = self.cache
        if slots == list(range(self.max_batch_size)):
            layers = [(c[i, 0, :past], c[i, 1, :past]) for i in range(self.num_layers)]
        elif len(slots) == 1 and past == 1:
            s = slots[0]
            layers = [(c[i, 0, :1, s:s + 1], c[i, 1, :1, s:s + 1])
                      for i in range(self.num_layers)]
        else:
            idx = np.asarray(slots)
            layers = [(np.ascontiguousarray(c[i, 0, :past][:, idx]),
                       np.ascontiguousarray(c[i, 1, :past][:, idx]))
                      for i in range(self.num_layers)]
        return ContinuousKVCacheInputs(np.ascontiguousarray(lengths), layers)

    def commit(self, slots: Sequence[int], layer: int, new_kv: np.ndarray,
               num_new: Sequence[int] | None = None) -> None:
        """Writes one layer's new keys and values, ``[2, T, len(slots), n_kv_heads,
        head_dim]``, at each slot's length (row ``b`` keeps its first ``num_new[b]`` tokens,
        all ``T`` if None). Call :meth:`advance` once every layer is written."""
        t = new_kv.shape[1]
        c = self.cache[layer]
        if num_new is None and t == 1:  # decode: one token per row, one scattered write
            if len(slots) == 1:  # plain indexing: a third of the fancy-indexed write's time
                s = slots[0]
                c[:, int(self.lengths[s]), s] = new_kv[:, 0, 0]
                return
            idx = list(slots)
            c[:, self.lengths[idx], idx] = new_kv[:, 0]
            return
        for b, s in enumerate(slots):
            n = t if num_new is None else num_new[b]
            start = int(self.lengths[s])
            c[:, start:start + n, s] = new_kv[:, :n, b]

    def advance(self, slots: Sequence[int], num_new: int | Sequence[int]) -> None:
        """Adds ``num_new`` tokens to the lengths of ``slots`` (after :meth:`commit`)."""
        self.lengths[list(slots)] += np.asarray(num_new, np.int64)
