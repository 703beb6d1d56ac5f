"""Weights rearranged at load time, kept in transparent huge pages.

A decode step streams every weight once (SmolLM2: 96 MB a token); in 4 KiB pages that is a
TLB miss every few weight rows, which the hardware prefetcher does not hide: one Q4_1 weight
read from memory went from 52 to 42 us in 2 MiB pages. The engine already copies the weights it
rearranges (``runtime/layouts``) into :func:`empty` arrays: anonymous mappings marked
``MADV_HUGEPAGE`` (the kernel's ``madvise`` mode, the default here), several arrays to a
32 MiB region. A region is unmapped when the last array in it is gone. :func:`zeros` gives a
large zero buffer its own such mapping (the KV cache). Where the platform has no ``madvise``,
arrays are plain numpy arrays. :func:`read_file` reads a large file (a model's constants)
into such a mapping.
"""

from __future__ import annotations

import mmap
import os
import threading

import numpy as np

from max.runtime.pool import aligned_empty

REGION = 32 << 20  # bytes: arrays share regions this large; a larger array gets its own
_HUGE = 2 << 20  # a region's size is a multiple of the huge page
_ALIGN = 64  # each array starts on a cache line


class _Arena:
    """Bump allocation in the current region; a region lives while its arrays do (each array's
    ``base`` chain holds the mapping)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._region: mmap.mmap | None = None
        self._used = 0

    def take(self, nbytes: int) -> np.ndarray:
        """``nbytes`` bytes (uint8) in huge-page-advised memory."""
        with self._lock:
            if nbytes > REGION // 2:
                return np.frombuffer(_mapping(nbytes), np.uint8, nbytes)
            start = -(-self._used // _ALIGN) * _ALIGN
            if self._region is None or start + nbytes > REGION:
                self._region, start = _mapping(REGION), 0
            self._used = start + nbytes
            return np.frombuffer(self._region, np.uint8, nbytes, start)


def _mapping(nbytes: int) -> mmap.mmap:
    size = -(-nbytes // _HUGE) * _HUGE
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            region.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # a kernel without transparent huge pages: 4 KiB pages
            pass
    return region


_ARENA = _Arena()


def empty(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialized C-contiguous array in huge-page-advised memory (plain memory for an
    empty array)."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if nbytes == 0 or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty(shape, dt)
    return _ARENA.take(nbytes).view(dt).reshape(shape)


def zeros(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A zero array in a mapping of its own, advised huge pages; its pages are filled (and
    count as memory) only when first written, 2 MiB at a time. For large buffers written
    piecemeal (a KV cache: each token's entries touched fresh 4 KiB pages, a page fault for
    every few layers and tokens)."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if nbytes == 0 or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.zeros(shape, dt)
    return np.frombuffer(_mapping(nbytes), dt, nbytes // dt.itemsize).reshape(shape)


def read_file(path: str | os.PathLike[str], min_bytes: int = _HUGE) -> bytes | memoryview:
    """A file's bytes, as a read-only view of memory that starts on a cache line: from
    ``min_bytes`` on, a huge-page mapping of its own, else a piece of a shared region (as
    :func:`empty`). For the constants a model binds at load (``constants.bin``, each constant
    on a cache line in it): its kernels load them as whole vectors at each call. ``bytes``
    (``f.read()``) began 16 or 48 bytes past a line, which made every 64-byte load of a
    matmul's weight panel two: [1, 128, 384] @ [384, 384] + b, one thread, 0.30 ms a call
    instead of 0.18, in whichever load of the model drew such an address."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return b""
        if not hasattr(mmap, "MAP_ANONYMOUS"):
            view = memoryview(aligned_empty((size,), np.dtype(np.uint8), size)[0])
        elif size < min_bytes:
            view = memoryview(_ARENA.take(size))
        else:
            view = memoryview(_mapping(size))[:size]
        got = 0
        while got < size:
            n = f.readinto(view[got:])
            if not n:
                raise OSError(f"{path}: file shrank while read ({got} of {size} bytes)")
            got += n
    return view.toreadonly()


__all__ = ["REGION", "empty", "read_file", "zeros"]
