"""``KVCacheParams`` and ``KVCacheStrategy``: how a model's key/value cache is laid out."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum

from max.dtype import DType


class KVCacheStrategy(str, Enum):
    """Enumeration of supported KV cache strategies for attention mechanisms.

    ``CONTINUOUS`` (ours, and what ``MODEL_DEFAULT`` means on the CPU) keeps one contiguous
    ``[max_seq_len, batch, kv_heads, head_dim]`` region per layer for keys and for values,
    one row of the batch per sequence: the model reads the used prefix in place.
    ``PAGED`` (fixed-size blocks and a lookup table) is not implemented here.
    """

    MODEL_DEFAULT = "model_default"
    """Use the model's default caching strategy."""
    PAGED = "paged"
    """Use paged attention for efficient memory management."""
    CONTINUOUS = "continuous"
    """One contiguous region per sequence and layer (the CPU strategy)."""

    def kernel_substring(self) -> str:
        """Returns the common substring included in the kernel name for this caching
        strategy."""
        return self.value

    def uses_opaque(self) -> bool:
        """Determines if this cache strategy uses opaque cache implementations."""
        return self is KVCacheStrategy.PAGED


@dataclass
class KVCacheParams:
    """Configuration parameters for key-value cache management in transformer models.

    Args:
        dtype: Data type for storing key and value tensors in the cache.
        n_kv_heads: Total number of key-value attention heads across all devices.
        head_dim: Dimensionality of each attention head.
        enable_prefix_caching: Whether to enable prefix caching (not supported: must be False).
        enable_kvcache_swapping_to_host: Whether to swap blocks to host memory (not supported).
        host_kvcache_swap_space_gb: Host memory (GB) for swapping; required with swapping.
        cache_strategy: Strategy to use for managing the KV cache.
        page_size: Tokens per page with ``PAGED`` (a multiple of 128, at least 128).
        n_devices: Total number of devices.
        is_mla: Whether the model uses Multi-Latent Attention.
        data_parallel_degree: Degree of data parallelism (1 or ``n_devices``).
        n_kv_heads_per_device: Computed: ``n_kv_heads`` split over the devices.

    Raises:
        ValueError: On a non-positive head count or width, a ``PAGED`` strategy without a
            valid ``page_size``, swapping without swap space, or a data parallel degree that
            is neither 1 nor ``n_devices``.
    """

    dtype: DType
    n_kv_heads: int
    head_dim: int
    enable_prefix_caching: bool = False
    enable_kvcache_swapping_to_host: bool = False
    host_kvcache_swap_space_gb: float | None = None
    cache_strategy: KVCacheStrategy = KVCacheStrategy.PAGED
    page_size: int | None = None
    n_devices: int = 1
    is_mla: bool = False
    data_parallel_degree: int = 1
    n_kv_heads_per_device: int = 0

    def __post_init__(self) -> None:
        for name in ("n_kv_heads", "head_dim", "n_devices", "data_parallel_degree"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"KVCacheParams: {name} must be a positive int, got {value!r}")
        if not isinstance(self.dtype, DType):
            raise TypeError(f"KVCacheParams: dtype must be a DType, got {self.dtype!r}")
        self.cache_strategy = KVCacheStrategy(self.cache_strategy)
        if self.cache_strategy is KVCacheStrategy.PAGED:
            if self.page_size is None or self.page_size < 128 or self.page_size % 128:
                raise ValueError("KVCacheParams: the paged strategy needs a page_size that is a "
                                 f"multiple of 128 and at least 128, got {self.page_size!r}")
        if self.enable_kvcache_swapping_to_host and not self.host_kvcache_swap_space_gb:
            raise ValueError("KVCacheParams: enable_kvcache_swapping_to_host needs "
                             "host_kvcache_swap_space_gb")
        if self.data_parallel_degree not in (1, self.n_devices):
            raise ValueError("KVCacheParams: data_parallel_degree must be 1 or n_devices "
                             f"({self.n_devices}), got {self.data_parallel_degree}")
        tp = self.n_devices // self.data_parallel_degree
        if self.n_kv_heads % tp and self.n_kv_heads >= tp:
            raise ValueError(f"KVCacheParams: n_kv_heads {self.n_kv_heads} does not split over "
                             f"{tp} devices")
        self.n_kv_heads_per_device = max(self.n_kv_heads // tp, 1)

    @property
    def dtype_shorthand(self) -> str:
        """“bf16” for bfloat16 dtype, “f32” otherwise."""
        return "bf16" if self.dtype == DType.bfloat16 else "f32"

    @property
    def static_cache_shape(self) -> tuple[str, str, str, str, str]:
        """The dimension names of the static cache tensor shape: (num_layers, batch_size,
        seq_len, n_kv_heads, head_dim)."""
        return ("num_layers", "batch_size", "seq_len", "n_kv_heads", "head_dim")

    def copy_as_dp_1(self) -> KVCacheParams:
        """A copy with data parallelism disabled (``n_devices`` divided by the data parallel
        degree).

        Raises:
            ValueError: If n_devices is not evenly divisible by data_parallel_degree.
        """
        if self.n_devices % self.data_parallel_degree:
            raise ValueError(f"KVCacheParams: n_devices {self.n_devices} is not divisible by "
                             f"data_parallel_degree {self.data_parallel_degree}")
        return dataclasses.replace(self, n_devices=self.n_devices // self.data_parallel_degree,
                                   data_parallel_degree=1, n_kv_heads_per_device=0)
