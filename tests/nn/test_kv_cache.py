"""max.nn.kv_cache: parameters as documented, and the continuous cache manager's views and
writes (checked against plain numpy indexing of the same array)."""

from __future__ import annotations

import numpy as np
import pytest

from max.dtype import DType
from max.nn.kv_cache import (
    ContinuousKVCacheManager, KVCacheParams, KVCacheStrategy, RaggedKVCacheInputs,
)


def _params(**kw) -> KVCacheParams:
    return KVCacheParams(DType.float32, 3, 4, cache_strategy=KVCacheStrategy.CONTINUOUS, **kw)


def test_params_defaults_and_checks() -> None:
    p = KVCacheParams(DType.bfloat16, 8, 64, page_size=128)
    assert p.cache_strategy is KVCacheStrategy.PAGED and p.n_kv_heads_per_device == 8
    assert p.dtype_shorthand == "bf16" and _params().dtype_shorthand == "f32"
    assert p.static_cache_shape == ("num_layers", "batch_size", "seq_len", "n_kv_heads",
                                    "head_dim")
    assert KVCacheStrategy.PAGED.uses_opaque() and not KVCacheStrategy.CONTINUOUS.uses_opaque()
    assert KVCacheStrategy.PAGED.kernel_substring() == "paged"
    with pytest.raises(ValueError, match="page_size that is a multiple of 128"):
        KVCacheParams(DType.float32, 8, 64)
    with pytest.raises(ValueError, match="n_kv_heads must be a positive int, got 0"):
        KVCacheParams(DType.float32, 0, 4, cache_strategy="continuous")
    dp = KVCacheParams(DType.float32, 8, 64, page_size=128, n_devices=4, data_parallel_degree=4)
    one = dp.copy_as_dp_1()
    assert (one.n_devices, one.data_parallel_degree) == (1, 1)
    with pytest.raises(ValueError, match="data_parallel_degree must be 1 or n_devices"):
        KVCacheParams(DType.float32, 8, 64, page_size=128, n_devices=4, data_parallel_degree=2)


def test_paged_strategy_is_refused_by_the_cpu_manager() -> None:
    with pytest.raises(NotImplementedError, match="'paged' is not supported on the CPU"):
        ContinuousKVCacheManager(KVCacheParams(DType.float32, 3, 4, page_size=128), 2, 2, 8)
    inputs = RaggedKVCacheInputs(1, 2, 3, 4)
    assert list(inputs) == [1, 2, 3, 4]


def test_views_are_in_place_and_writes_land_at_each_rows_length() -> None:
    rng = np.random.default_rng(0)
    m = ContinuousKVCacheManager(_params(), num_layers=2, max_batch_size=3, max_seq_len=10)
    slots = [m.claim() for _ in range(3)]
    assert slots == [0, 1, 2] and m.free_slots == 0
    with pytest.raises(RuntimeError, match="all 3 slots are in use"):
        m.claim()
    # A prompt per slot (lengths 4, 2, 5), then one decode step for all.
    expect = np.zeros_like(m.cache)
    for s, n in zip(slots, (4, 2, 5)):
        inputs = m.fetch([s], n)
        assert inputs.cache_lengths.tolist() == [0]
        assert all(np.shares_memory(k, m.cache) for k, _ in inputs.layers)
        for layer in range(2):
            new = rng.standard_normal((2, n, 1, 3, 4), dtype=np.float32)
            m.commit([s], layer, new)
            expect[layer, :, :n, s] = new[:, :, 0]
        m.advance([s], n)
    np.testing.assert_array_equal(m.cache, expect)
    inputs = m.fetch(slots, 1)
    assert inputs.cache_lengths.tolist() == [4, 2, 5]
    for layer, (k, v) in enumerate(inputs.layers):
        assert k.shape == (5, 3, 3, 4) and np.shares_memory(k, m.cache)
        np.testing.assert_array_equal(v, expect[layer, 1, :5])
    for layer in range(2):
        new = rng.standard_normal((2, 1, 3, 3, 4), dtype=np.float32)
        m.commit(slots, layer, new)
        for b, n in enumerate((4, 2, 5)):
            expect[layer, :, n, b] = new[:, 0, b]
    m.advance(slots, 1)
    np.testing.assert_array_equal(m.cache, expect)
    assert m.lengths.tolist() == [5, 3, 6]
    # One row decoding alone (batch 1: a plain-indexed write) lands at its own length.
    new = rng.standard_normal((2, 1, 1, 3, 4), dtype=np.float32)
    m.commit([1], 0, new)
    expect[0, :, 3, 1] = new[:, 0, 0]
    np.testing.assert_array_equal(m.cache, expect)
    # A subset of rows is gathered (a copy), with the same values.
    sub = m.fetch([2, 0], 1)
    np.testing.assert_array_equal(sub.layers[1][0], expect[1, 0, :6][:, [2, 0]])
    m.release(1)
    assert m.free_slots == 1 and m.lengths[1] == 0
    with pytest.raises(ValueError, match="slot 1 is not in use"):
        m.release(1)
    with pytest.raises(ValueError, match="5 new tokens after 6 would pass the cache's "
                                         "max_seq_len 10"):
        m.fetch([2], 5)
