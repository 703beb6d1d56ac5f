"""Key-value caches for autoregressive decoding (``max.nn.kv_cache``)."""

from max.nn.kv_cache.cache_params import KVCacheParams, KVCacheStrategy
from max.nn.kv_cache.manager import (
    ContinuousKVCacheInputs,
    ContinuousKVCacheManager,
    KVCacheInputs,
    KVCacheInputsSequence,
    RaggedKVCacheInputs,
)

__all__ = ["ContinuousKVCacheInputs", "ContinuousKVCacheManager", "KVCacheInputs",
           "KVCacheInputsSequence", "KVCacheParams", "KVCacheStrategy", "RaggedKVCacheInputs"]
