"""A bounded pool of large output blocks, reused across calls.

First touching fresh memory is expensive here: a new 64 MiB output comes from ``mmap`` and costs
about 12 ms of page faults (zeroing by the kernel), as long as the whole elementwise kernel that
fills it at memory bandwidth. Reusing blocks keeps the pages mapped and warm.

Safety comes from ownership, not from the caller's good behaviour: a block lent for an output is
owned by a small object that is the numpy array's ``base``. Every view of the output, every
``Tensor`` wrapping it and every DLPack export keeps that owner alive, and the block returns to
the pool only when the owner is garbage collected, i.e. when nothing can read or write the
array any more. An output kept by the user is therefore never handed out again.

Blocks are anonymous ``mmap`` regions (page aligned, released by ``munmap`` when evicted): the
pool does not touch the process's ``malloc`` (no ``mallopt``, so nothing changes for numpy or
anything else in the process). Only outputs of at least :data:`MIN_POOLED_BYTES` use it: below
that, glibc's heap already reuses memory cheaply. Blocks are not zeroed (outputs are fully
written by the compiled code).

The pool keeps at most ``$MAX_OUTPUT_POOL_BYTES`` bytes of idle blocks (default 256 MiB; 0
turns pooling off), evicting the least recently returned first. Blocks in use are the caller's
and are not counted.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading

import numpy as np

POOL_BYTES_ENV = "MAX_OUTPUT_POOL_BYTES"
DEFAULT_POOL_BYTES = 256 << 20
#: Outputs smaller than this come from ``np.empty`` (malloc reuses its heap for them).
MIN_POOLED_BYTES = 1 << 20
_PAGE = mmap.PAGESIZE
_HUGE = 2 << 20  # transparent huge pages: fewer faults and TLB misses on large blocks


#: Idle scratch (intermediate) blocks each model keeps; read by the model's own allocator
#: (compiler/pipelines/scratch.py), checked here.
SCRATCH_BYTES_ENV = "MAX_SCRATCH_POOL_BYTES"


def pool_limit_from_env(name: str = POOL_BYTES_ENV) -> int:
    """``$MAX_OUTPUT_POOL_BYTES`` (or ``$name``) as a byte count (default
    :data:`DEFAULT_POOL_BYTES`, also the scratch default).

    Raises:
        ValueError: if it is set to anything but a non-negative integer.
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return DEFAULT_POOL_BYTES
    value = int(text) if text.isascii() and text.isdigit() else -1  # digits only: what the C side parses
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer (bytes; 0 keeps nothing), "
                         f"got {text!r}")
    return value


#: Every output of at least MIN_POOLED_BYTES starts on this boundary, pooled or not: the
#: compiled code streams into large outputs with aligned non-temporal stores when they are
#: (``compiler/pipelines/streaming_stores.py``; it checks, and runs plain stores otherwise).
OUTPUT_ALIGNMENT = 64


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype,
                  nbytes: int) -> tuple[np.ndarray, int]:
    """An uninitialized C-contiguous array on an :data:`OUTPUT_ALIGNMENT` boundary, outside the
    pool (turned off), and its data address."""
    raw = np.empty(nbytes + OUTPUT_ALIGNMENT, np.uint8)
    skip = -raw.ctypes.data % OUTPUT_ALIGNMENT
    out = raw[skip:skip + nbytes].view(dtype).reshape(shape)
    return out, raw.ctypes.data + skip


class _Lent:
    """Owns one lent block for as long as any array over it lives; then returns it."""

    __slots__ = ("__array_interface__", "_block", "_address", "_pool")

    def __init__(self, pool: OutputPool, block: mmap.mmap, address: int, interface: dict) -> None:
        self._pool = pool
        self._block = block
        self._address = address
        self.__array_interface__ = interface

    def __del__(self) -> None:
        block, self._block = self._block, None
        if block is not None:
            try:
                self._pool._give_back(block, self._address)
            except Exception:  # noqa: BLE001 - at interpreter exit; the mmap frees itself
                pass


class OutputPool:
    """Idle page-aligned blocks by size, at most ``limit`` bytes of them.

    Args:
        limit: bytes of idle blocks kept; None reads ``$MAX_OUTPUT_POOL_BYTES`` on first use.
    """

    def __init__(self, limit: int | None = None) -> None:
        self._limit = limit
        # (size, block, address), least recently returned first. Short: a few blocks per
        # model output, so a scan beats a dict of lists.
        self._idle: list[tuple[int, mmap.mmap, int]] = []
        self._idle_bytes = 0
        # Reentrant: a _Lent may be collected (and give its block back) while this thread
        # holds the lock inside take().
        self._lock = threading.RLock()
        self.fresh = 0  # blocks mapped
        self.reused = 0  # lends served from idle blocks

    @property
    def limit(self) -> int:
        if self._limit is None:
            self._limit = pool_limit_from_env()
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"the output pool limit must be >= 0 bytes, got {value}")
        with self._lock:
            self._limit = value
            self._trim()

    @property
    def idle_bytes(self) -> int:
        """Bytes of idle blocks held now (never above :attr:`limit`)."""
        return self._idle_bytes

    @property
    def idle_blocks(self) -> int:
        return len(self._idle)

    def clear(self) -> None:
        """Unmaps every idle block (blocks in use return later, up to the limit)."""
        with self._lock:
            self._idle.clear()
            self._idle_bytes = 0

    def empty(self, shape: tuple[int, ...], dtype: np.dtype, nbytes: int) -> tuple[np.ndarray, int]:
        """An uninitialized C-contiguous array of ``shape`` and ``dtype`` (``nbytes`` long,
        at least :data:`MIN_POOLED_BYTES`) over a pooled block, and its data address."""
        size = -(-nbytes // _PAGE) * _PAGE
        block = address = None
        with self._lock:
            idle = self._idle
            for k in range(len(idle) - 1, -1, -1):  # the most recently returned first
                if idle[k][0] == size:
                    _, block, address = idle.pop(k)
                    self._idle_bytes -= size
                    self.reused += 1
                    break
        if block is None:
            block = mmap.mmap(-1, size)
            if size >= _HUGE and hasattr(mmap, "MADV_HUGEPAGE"):
                try:
                    block.madvise(mmap.MADV_HUGEPAGE)
                except OSError:
                    pass
            view = ctypes.c_char.from_buffer(block)
            address = ctypes.addressof(view)
            del view  # the export would keep the mapping from ever being released
            self.fresh += 1
        if dtype.isbuiltin == 1 and dtype.kind in "biufc":
            interface = {"data": (address, False), "shape": shape, "typestr": dtype.str,
                         "version": 3}
            return np.asarray(_Lent(self, block, address, interface)), address
        # Extension dtypes (bfloat16, float8): bytes, then a view, which keeps the owner.
        interface = {"data": (address, False), "shape": (nbytes,), "typestr": "|u1",
                     "version": 3}
        raw = np.asarray(_Lent(self, block, address, interface))
        return raw.view(dtype).reshape(shape), address

    def _give_back(self, block: mmap.mmap, address: int) -> None:
        size = len(block)
        with self._lock:
            if size > self.limit:
                return  # dropped: the mmap unmaps itself
            self._idle.append((size, block, address))
            self._idle_bytes += size
            self._trim()

    def _trim(self) -> None:
        while self._idle_bytes > self.limit and self._idle:
            size, _, _ = self._idle.pop(0)
            self._idle_bytes -= size


#: The process's pool, shared by every model (outputs of one size serve any model).
OUTPUT_POOL = OutputPool()


def pooled_empty(shape: tuple[int, ...], dtype: np.dtype, nbytes: int) -> tuple[np.ndarray, int]:
    """A large output (``nbytes`` >= :data:`MIN_POOLED_BYTES`) and its data address: from
    :data:`OUTPUT_POOL` while it has a limit, else a fresh aligned array."""
    if OUTPUT_POOL.limit:
        return OUTPUT_POOL.empty(shape, dtype, nbytes)
    return aligned_empty(shape, dtype, nbytes)
