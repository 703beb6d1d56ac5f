"""Key-value caches for autoregressive decoding (``max.nn.kv_cache``)."""
